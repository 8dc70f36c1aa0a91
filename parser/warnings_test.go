package parser

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWarnings(t *testing.T) {
	const (
		urlContinuation = "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/"
		urlMaintainer   = "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/"
		urlLegacy       = "https://docs.docker.com/go/dockerfile/rule/legacy-key-value-format/"
	)
	tests := []struct {
		name string
		in   string
		want []Warning
	}{{
		name: "clean",
		in:   "FROM scratch AS base\nRUN [\"true\"]\nCMD [ \"a\" ]\nRUN [ -f /x ] || true\n",
	}, {
		name: "empty continuation line",
		in:   "FROM scratch\nRUN a \\\n\n  b\nUSER x\n",
		want: []Warning{{Loc: loc(2, 4), Message: "Empty continuation line", Rule: "NoEmptyContinuation", URL: urlContinuation}},
	}, {
		name: "invalid json falls back to shell form",
		in:   "FROM scratch\nRUN [\"echo\", hi]\nCMD [\"a\" \"b\"]\nENTRYPOINT [\"x\",]\n",
		want: []Warning{{
			Loc:     loc(2, 2),
			Message: "RUN arguments look like exec form but are not valid JSON (invalid character 'h' looking for beginning of value); they run in shell form",
			Rule:    "InvalidJSONArgs",
		}, {
			Loc:     loc(3, 3),
			Message: "CMD arguments look like exec form but are not valid JSON (invalid character '\"' after array element); they run in shell form",
			Rule:    "InvalidJSONArgs",
		}, {
			Loc:     loc(4, 4),
			Message: "ENTRYPOINT arguments look like exec form but are not valid JSON (invalid character ']' looking for beginning of value); they run in shell form",
			Rule:    "InvalidJSONArgs",
		}},
	}, {
		name: "lint rules of the instruction decoder, in line order",
		in:   "FROM scratch as Base\nENV A 1\nMAINTAINER me\nLABEL a=b\nLABEL c d\n",
		want: []Warning{
			{Loc: loc(1, 1), Message: "Stage name 'Base' should be lowercase", Rule: "StageNameCasing", URL: "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/"},
			{Loc: loc(1, 1), Message: "'as' and 'FROM' keywords' casing do not match", Rule: "FromAsCasing", URL: "https://docs.docker.com/go/dockerfile/rule/from-as-casing/"},
			{Loc: loc(2, 2), Message: `"ENV key=value" should be used instead of legacy "ENV key value" format`, Rule: "LegacyKeyValueFormat", URL: urlLegacy},
			{Loc: loc(3, 3), Message: "Maintainer instruction is deprecated in favor of using label", Rule: "MaintainerDeprecated", URL: urlMaintainer},
			{Loc: loc(5, 5), Message: `"LABEL key=value" should be used instead of legacy "LABEL key value" format`, Rule: "LegacyKeyValueFormat", URL: urlLegacy},
		},
	}, {
		name: "check directive skips rules",
		in:   "# check=skip=MaintainerDeprecated,InvalidJSONArgs\nFROM scratch\nMAINTAINER me\nRUN [\"a\", b]\nENV A 1\n",
		want: []Warning{{Loc: loc(5, 5), Message: `"ENV key=value" should be used instead of legacy "ENV key value" format`, Rule: "LegacyKeyValueFormat", URL: urlLegacy}},
	}, {
		name: "check comment above an instruction skips its rules",
		in:   "FROM scratch\n# check=skip=InvalidJSONArgs,MaintainerDeprecated\nRUN [\"a\", b]\nMAINTAINER me\nRUN [\"c\", d]\n",
		want: []Warning{
			{Loc: loc(4, 4), Message: "Maintainer instruction is deprecated in favor of using label", Rule: "MaintainerDeprecated", URL: urlMaintainer},
			{
				Loc:     loc(5, 5),
				Message: "RUN arguments look like exec form but are not valid JSON (invalid character 'd' looking for beginning of value); they run in shell form",
				Rule:    "InvalidJSONArgs",
			},
		},
	}, {
		name: "check directive skips all",
		in:   "# check=skip=all\nFROM scratch\nMAINTAINER me\nRUN a \\\n\n b\n",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			df := mustParse(t, tt.in)
			if diff := cmp.Diff(tt.want, df.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
