package awsfault

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"time"
)

// AnswerLongPolls makes the endpoint answer an SQS long poll
// (ReceiveMessage with WaitTimeSeconds above 0) as SQS does: as soon as a
// message is there to receive, also one that became visible again after
// a visibility timeout or a hand-back. The emulator behind it wakes a
// parked long poll only on a send, so a message that becomes visible
// again goes to whichever receive starts next; a consumer that hands a
// message back and starts its next receive right after the hand-back
// expires takes it back every time. The endpoint instead receives without
// waiting every interval until there are messages or the wait is over.
// Call it before the endpoint is used.
func (p *Proxy) AnswerLongPolls(interval time.Duration) { p.pollEvery = interval }

// longPoll serves a ReceiveMessage long poll by short polls of target.
// It reports false when the request is not one (it is then forwarded as
// it is).
func (p *Proxy) longPoll(w http.ResponseWriter, r *http.Request, body []byte) bool {
	var req map[string]any
	if p.pollEvery <= 0 || json.Unmarshal(body, &req) != nil {
		return false
	}
	wait, _ := req["WaitTimeSeconds"].(float64)
	if wait <= 0 {
		return false
	}
	req["WaitTimeSeconds"] = 0
	short, _ := json.Marshal(req)
	deadline := time.Now().Add(time.Duration(wait * float64(time.Second)))
	for {
		out, err := http.NewRequestWithContext(r.Context(), r.Method, p.target+r.URL.RequestURI(), bytes.NewReader(short))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return true
		}
		out.Header = r.Header.Clone()
		out.Header.Del("Content-Length")
		out.ContentLength = int64(len(short))
		resp, err := p.client.Do(out)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return true
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return true
		}
		var got struct{ Messages []json.RawMessage }
		_ = json.Unmarshal(b, &got)
		if resp.StatusCode != http.StatusOK || len(got.Messages) > 0 || time.Now().Add(p.pollEvery).After(deadline) {
			for k, vs := range resp.Header {
				w.Header()[k] = vs
			}
			w.WriteHeader(resp.StatusCode)
			_, _ = w.Write(b)
			return true
		}
		select {
		case <-time.After(p.pollEvery):
		case <-r.Context().Done():
			return true
		}
	}
}
