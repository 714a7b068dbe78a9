package compose_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/cloudcommerce/cloudcommerce/internal/pipeline"
	"github.com/cloudcommerce/cloudcommerce/internal/topology"
)

// The compose stack's Prometheus and Alertmanager, run for real: images
// built from Debian's binaries (deploy/prometheus/local-images.sh), the
// repository's prometheus.yml, alertmanager.yml and alert rules.

// forClause is the `for:` of an alerting rule.
var forClause = regexp.MustCompile(`(?m)^([ \t]+for:[ \t]*)\S+[ \t]*$`)

// shortRules copies deploy/prometheus/rules with every `for` set to 10s,
// into a directory Prometheus (running as nobody) can read: the alerts
// are the repository's, only quicker to fire than a test can wait.
func (s *stack) shortRules(dir string) {
	t := s.t
	t.Helper()
	files, err := filepath.Glob(filepath.Join(s.root, "deploy/prometheus/rules/*.yml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no rule files in deploy/prometheus/rules (%v)", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if !forClause.Match(b) {
			t.Fatalf("%s: no `for:` to shorten", f)
		}
		b = forClause.ReplaceAll(b, []byte("${1}10s"))
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// buildObservabilityImages builds the Prometheus and Alertmanager images
// from Debian's binaries, with no pull.
func (s *stack) buildObservabilityImages(ctx context.Context, promImage, amImage string) {
	s.t.Helper()
	s.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = exec.CommandContext(ctx, "docker", "rmi", "-f", promImage, amImage).CombinedOutput()
	})
	s.run(ctx, 5*time.Minute, s.root, nil, "bash", filepath.Join(s.root, "deploy/prometheus/local-images.sh"), promImage, amImage)
}

// getJSON GETs base+path and decodes a JSON answer.
func (s *stack) getJSON(ctx context.Context, base, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s %s", path, resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

// waitWorkerTargets waits until Prometheus's /api/v1/targets lists n
// distinct worker targets, each up, and returns their instances.
func (s *stack) waitWorkerTargets(ctx context.Context, n int) []string {
	s.t.Helper()
	var up []string
	var last string
	defer func() {
		if s.t.Failed() {
			s.t.Logf("prometheus's last answer: %s", last)
		}
	}()
	s.waitFor(ctx, 2*time.Minute, fmt.Sprintf("Prometheus reports %d worker targets up", n), func() bool {
		var r struct {
			Status string
			Data   struct {
				ActiveTargets []struct {
					Labels    map[string]string
					ScrapeURL string
					Health    string
					LastError string
				}
			}
		}
		if err := s.getJSON(ctx, s.prometheus, "/api/v1/targets?state=active", &r); err != nil {
			last = err.Error()
			return false
		}
		seen := map[string]bool{}
		up = up[:0]
		var all []string
		for _, tg := range r.Data.ActiveTargets {
			if tg.Labels["job"] != "cloudcommerce-worker" {
				continue
			}
			all = append(all, fmt.Sprintf("%s %s %s", tg.ScrapeURL, tg.Health, tg.LastError))
			if tg.Health == "up" && !seen[tg.Labels["instance"]] {
				seen[tg.Labels["instance"]] = true
				up = append(up, tg.Labels["instance"])
			}
		}
		last = fmt.Sprint(all)
		return len(up) == n && len(all) == n
	})
	s.t.Logf("prometheus: worker targets up: %v (%s)", up, last)
	return up
}

// query runs an instant PromQL query and returns the value of its single
// sample.
func (s *stack) query(ctx context.Context, q string) (float64, error) {
	var r struct {
		Status string
		Data   struct {
			ResultType string
			Result     []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	if err := s.getJSON(ctx, s.prometheus, "/api/v1/query?query="+url.QueryEscape(q), &r); err != nil {
		return 0, err
	}
	if r.Status != "success" || r.Data.ResultType != "vector" || len(r.Data.Result) != 1 {
		return 0, fmt.Errorf("query %s: status %s, %s of %d samples", q, r.Status, r.Data.ResultType, len(r.Data.Result))
	}
	str, _ := r.Data.Result[0].Value[1].(string)
	return strconv.ParseFloat(str, 64)
}

// deadLetter puts one message straight into a stage's DLQ through the
// published AWS endpoint, as a message the pipeline gave up on.
func (s *stack) deadLetter(ctx context.Context, st pipeline.Stage) {
	s.t.Helper()
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithBaseEndpoint(s.awsEndpoint))
	if err != nil {
		s.t.Fatal(err)
	}
	topo, err := topology.Load()
	if err != nil {
		s.t.Fatal(err)
	}
	name := topo.Names("cloudcommerce").DLQs[st]
	client := sqs.NewFromConfig(cfg)
	u, err := client.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(name)})
	if err != nil {
		s.t.Fatalf("get the URL of %s: %v", name, err)
	}
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: u.QueueUrl,
		MessageBody: aws.String(`{"compose-test":"a message the pipeline gave up on"}`)}); err != nil {
		s.t.Fatalf("send a message to %s: %v", name, err)
	}
	s.t.Logf("alerting: one message sent to %s", name)
}

// waitAlert waits until Alertmanager's /api/v2/alerts holds an active alert
// with the name and labels.
func (s *stack) waitAlert(ctx context.Context, d time.Duration, name string, labels map[string]string) {
	s.t.Helper()
	var last string
	defer func() {
		if s.t.Failed() {
			s.t.Logf("alertmanager's last answer: %s", last)
		}
	}()
	s.waitFor(ctx, d, "Alertmanager receives "+name, func() bool {
		var alerts []struct {
			Labels   map[string]string
			StartsAt time.Time
			Status   struct{ State string }
		}
		if err := s.getJSON(ctx, s.alertmanager, "/api/v2/alerts?active=true&filter="+url.QueryEscape(`alertname="`+name+`"`), &alerts); err != nil {
			last = err.Error()
			return false
		}
		last = fmt.Sprint(alerts)
		for _, a := range alerts {
			match := a.Labels["alertname"] == name && a.Status.State == "active"
			for k, v := range labels {
				match = match && a.Labels[k] == v
			}
			if match {
				s.t.Logf("alertmanager: %s %v active since %s", name, a.Labels, a.StartsAt.Format(time.RFC3339))
				return true
			}
		}
		return false
	})
}
