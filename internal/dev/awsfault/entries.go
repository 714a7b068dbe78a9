package awsfault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
)

// EntryFault fails chosen entries of a batch request the way the service
// reports a partial failure: the request is forwarded without them, and
// the endpoint's HTTP 200 answer is returned with them added as failed,
// beside the entries the endpoint accepted. Two operations are known:
//
//   - SQS SendMessageBatch: each failed entry is listed under "Failed" with
//     its Id, Code, Message and SenderFault (AWS sets SenderFault false for
//     a fault of its own, which a client may retry);
//   - EventBridge PutEvents: the answer's "Entries" keep the request's
//     order, a failed entry carrying ErrorCode and ErrorMessage in place of
//     an EventId, and FailedEntryCount counts them.
type EntryFault struct {
	Service   string // "SQS" or "EventBridge"
	Operation string // "SendMessageBatch" or "PutEvents"
	// Match must occur in the entry's MessageBody (SQS) or Detail
	// (EventBridge).
	Match string
	// Code, Message and SenderFault are what the failed entry carries.
	Code, Message string
	SenderFault   bool
	// Times is how many times each matching entry (told apart by its body)
	// fails before it is let through; 0 means always.
	Times int

	mu   sync.Mutex
	seen map[string]int
	hits int
}

// Hits returns how many entries the fault has failed.
func (f *EntryFault) Hits() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.hits
}

// fails reports whether this entry fails now, counting it.
func (f *EntryFault) fails(body string) bool {
	if !strings.Contains(body, f.Match) {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen == nil {
		f.seen = map[string]int{}
	}
	if f.Times > 0 && f.seen[body] >= f.Times {
		return false
	}
	f.seen[body]++
	f.hits++
	return true
}

// AddEntries installs an entry fault (tried in the order added, after the
// rules' whole-request faults) and returns it.
func (p *Proxy) AddEntries(f *EntryFault) *EntryFault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.entryFaults = append(p.entryFaults, f)
	return f
}

func (p *Proxy) entryFaultsFor(svc, op string) []*EntryFault {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*EntryFault
	for _, f := range p.entryFaults {
		if f.Service == svc && f.Operation == op {
			out = append(out, f)
		}
	}
	return out
}

// failedEntry is an entry a fault failed, at its index in the request.
type failedEntry struct {
	index int
	id    string
	fault *EntryFault
}

// serveEntries answers a batch request some of whose entries fail; ok is
// false when no entry fault applies (the request is then forwarded as is).
func (p *Proxy) serveEntries(w http.ResponseWriter, r *http.Request, svc, op string, body []byte, forward http.Handler) bool {
	faults := p.entryFaultsFor(svc, op)
	if len(faults) == 0 {
		return false
	}
	bodyField := map[string]string{"SQS": "MessageBody", "EventBridge": "Detail"}[svc]
	var req map[string]json.RawMessage
	if bodyField == "" || json.Unmarshal(body, &req) != nil {
		return false
	}
	var entries []map[string]json.RawMessage
	if json.Unmarshal(req["Entries"], &entries) != nil {
		return false
	}
	var kept []map[string]json.RawMessage
	var failed []failedEntry
	for i, e := range entries {
		var text, id string
		_ = json.Unmarshal(e[bodyField], &text)
		_ = json.Unmarshal(e["Id"], &id)
		var hit *EntryFault
		for _, f := range faults {
			if f.fails(text) {
				hit = f
				break
			}
		}
		if hit != nil {
			failed = append(failed, failedEntry{index: i, id: id, fault: hit})
		} else {
			kept = append(kept, e)
		}
	}
	if len(failed) == 0 {
		return false
	}
	// What the endpoint answers for the entries let through (an empty
	// request is not sent: the service rejects it).
	ans := map[string]json.RawMessage{}
	status, header := http.StatusOK, http.Header{"Content-Type": {r.Header.Get("Content-Type")}}
	if len(kept) > 0 {
		req["Entries"], _ = json.Marshal(kept)
		nb, _ := json.Marshal(req)
		fr := r.Clone(r.Context())
		fr.Body = io.NopCloser(bytes.NewReader(nb))
		fr.ContentLength = int64(len(nb))
		fr.Header.Set("Content-Length", fmt.Sprint(len(nb)))
		rec := httptest.NewRecorder()
		forward.ServeHTTP(rec, fr)
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &ans) != nil {
			// The endpoint failed the request as a whole: pass that on.
			for k, vs := range rec.Header() {
				w.Header()[k] = vs
			}
			w.WriteHeader(rec.Code)
			_, _ = w.Write(rec.Body.Bytes())
			return true
		}
		status, header = rec.Code, rec.Header()
	}
	switch svc {
	case "SQS":
		var fl []map[string]any
		_ = json.Unmarshal(ans["Failed"], &fl)
		for _, f := range failed {
			fl = append(fl, map[string]any{"Id": f.id, "Code": f.fault.Code, "Message": f.fault.Message, "SenderFault": f.fault.SenderFault})
		}
		ans["Failed"], _ = json.Marshal(fl)
		if _, ok := ans["Successful"]; !ok {
			ans["Successful"] = json.RawMessage("[]")
		}
	case "EventBridge":
		var got []json.RawMessage
		_ = json.Unmarshal(ans["Entries"], &got)
		var count int
		_ = json.Unmarshal(ans["FailedEntryCount"], &count)
		out := make([]json.RawMessage, 0, len(entries))
		fi := 0
		for i := range entries {
			if fi < len(failed) && failed[fi].index == i {
				b, _ := json.Marshal(map[string]string{"ErrorCode": failed[fi].fault.Code, "ErrorMessage": failed[fi].fault.Message})
				out = append(out, b)
				fi++
				continue
			}
			if len(got) > 0 {
				out = append(out, got[0])
				got = got[1:]
			}
		}
		ans["Entries"], _ = json.Marshal(out)
		ans["FailedEntryCount"], _ = json.Marshal(count + len(failed))
	}
	b, _ := json.Marshal(ans)
	for k, vs := range header {
		w.Header()[k] = vs
	}
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.Header().Del("Content-Encoding")
	w.Header().Del("X-Amz-Crc32")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return true
}
