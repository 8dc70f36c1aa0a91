package planner

import (
	"maps"
	"slices"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

func hasEnv(env []string, key string) bool {
	for _, kv := range env {
		if k, _ := splitKV(kv); k == key {
			return true
		}
	}
	return false
}

// emptyImage is the config of FROM scratch, as BuildKit makes it.
func emptyImage(p platform) v1.ConfigFile {
	cf := v1.ConfigFile{Architecture: p.Arch, OS: p.OS, Variant: p.Variant}
	cf.RootFS.Type = "layers"
	cf.Config.WorkingDir = "/"
	if p.OS != "windows" {
		cf.Config.Env = []string{"PATH=" + defaultPath}
	}
	return cf
}

// normalizeImage keeps of a base image's config what BuildKit reads from
// it (its image type has no created time, container or docker_version,
// and its config no hostname, tty and such), deeply copied.
func normalizeImage(src v1.ConfigFile) v1.ConfigFile {
	cf := v1.ConfigFile{
		Architecture: src.Architecture,
		Author:       src.Author,
		OS:           src.OS,
		OSVersion:    src.OSVersion,
		Variant:      src.Variant,
		OSFeatures:   slices.Clone(src.OSFeatures),
		RootFS:       v1.RootFS{Type: src.RootFS.Type, DiffIDs: slices.Clone(src.RootFS.DiffIDs)},
		History:      slices.Clone(src.History),
	}
	c := src.Config
	cf.Config = cloneConfig(v1.Config{
		User:         c.User,
		ExposedPorts: c.ExposedPorts,
		Env:          c.Env,
		Entrypoint:   c.Entrypoint,
		Cmd:          c.Cmd,
		Volumes:      c.Volumes,
		WorkingDir:   c.WorkingDir,
		Labels:       c.Labels,
		StopSignal:   c.StopSignal,
		ArgsEscaped:  c.ArgsEscaped,
		Healthcheck:  c.Healthcheck,
		OnBuild:      c.OnBuild,
		Shell:        c.Shell,
	})
	return cf
}

func cloneConfigFile(src v1.ConfigFile) v1.ConfigFile {
	cf := src
	cf.OSFeatures = slices.Clone(src.OSFeatures)
	cf.RootFS.DiffIDs = slices.Clone(src.RootFS.DiffIDs)
	cf.History = slices.Clone(src.History)
	cf.Config = cloneConfig(src.Config)
	return cf
}

func cloneConfig(src v1.Config) v1.Config {
	c := src
	c.Cmd = slices.Clone(src.Cmd)
	c.Entrypoint = slices.Clone(src.Entrypoint)
	c.Env = slices.Clone(src.Env)
	c.OnBuild = slices.Clone(src.OnBuild)
	c.Shell = slices.Clone(src.Shell)
	c.Labels = maps.Clone(src.Labels)
	c.Volumes = maps.Clone(src.Volumes)
	c.ExposedPorts = maps.Clone(src.ExposedPorts)
	if src.Healthcheck != nil {
		h := *src.Healthcheck
		h.Test = slices.Clone(src.Healthcheck.Test)
		c.Healthcheck = &h
	}
	return c
}
