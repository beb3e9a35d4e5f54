package daemon

import (
	"os"
	"slices"
	"testing"

	"go.yaml.in/yaml/v3"
)

const (
	alertsPath     = "../../examples/prometheus/lvsd-alerts.yml"
	alertTestsPath = "../../examples/prometheus/lvsd-alerts.test.yml"
)

// TestAlertRules is the promise beside `promtool test rules` (make alerts):
// every alert asks only for metrics lvsd exports, every alert has a test
// in which it fires and one in which it stays silent, and the alerts the
// issue asks for are there.
func TestAlertRules(t *testing.T) {
	var rules struct {
		Groups []struct {
			Rules []struct{ Alert, Expr string }
		}
	}
	var tests struct {
		RuleFiles []string `yaml:"rule_files"`
		Tests     []struct {
			Name          string
			AlertRuleTest []struct {
				Alertname string
				ExpAlerts []map[string]any `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		}
	}
	for path, v := range map[string]any{alertsPath: &rules, alertTestsPath: &tests} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(data, v); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
	if !slices.Equal(tests.RuleFiles, []string{"lvsd-alerts.yml"}) {
		t.Errorf("the tests load %v", tests.RuleFiles)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	exported := exportedMetricNames(t)
	var names []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			for _, m := range metricNames(r.Expr) {
				if !exported[m] {
					t.Errorf("alert %s asks for %s, which lvsd does not export", r.Alert, m)
				}
			}
			if !fires[r.Alert] {
				t.Errorf("no test shows alert %s firing", r.Alert)
			}
			if !silent[r.Alert] {
				t.Errorf("no test shows alert %s silent", r.Alert)
			}
		}
	}
	for _, want := range []string{"LvsdVRRPNoMaster", "LvsdVRRPTwoMasters", "LvsdRealServerDown", "LvsdServiceBelowQuorum",
		"LvsdReloadFailed", "LvsdDriftRepaired", "LvsdSyncDaemonNotRunning", "LvsdChecksSlowerThanInterval",
		"LvsdEvictionGuardHolding", "LvsdAnnouncedVIPWithdrawn", "LvsdBGPSessionDown"} {
		if !slices.Contains(names, want) {
			t.Errorf("no alert %s", want)
		}
	}
}
