package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// UserConfig is mybuild's own configuration file: what a user would
// otherwise repeat as flags on every command.
//
//	{"insecure-registries": ["registry.local:5000"]}
type UserConfig struct {
	// InsecureRegistries are added to every --insecure-registry list.
	InsecureRegistries []string `json:"insecure-registries"`
}

// UserConfigPath is where mybuild's configuration file is: $MYBUILD_CONFIG,
// else $XDG_CONFIG_HOME/mybuild/config.json, else
// ~/.config/mybuild/config.json; "" when there is no home directory.
func UserConfigPath() string {
	if p := os.Getenv("MYBUILD_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "mybuild", "config.json")
}

// LoadUserConfig reads the configuration file at path. A missing file (or
// path "") is an empty configuration; a malformed one is an error naming
// the file.
func LoadUserConfig(path string) (UserConfig, error) {
	var c UserConfig
	if path == "" {
		return c, nil
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read mybuild config: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("parse mybuild config %s: %w", path, err)
	}
	return c, nil
}
