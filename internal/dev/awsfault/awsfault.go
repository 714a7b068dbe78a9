// Package awsfault is a fault endpoint for tests: an HTTP reverse proxy in
// front of an AWS endpoint (the emulator) that answers chosen operations
// with the error responses AWS itself sends, and forwards everything else.
//
// Operations are recognised as AWS routes them: by the X-Amz-Target header
// for the JSON protocols (DynamoDB "DynamoDB_20120810.<Op>", SQS
// "AmazonSQS.<Op>", EventBridge "AWSEvents.<Op>") and by the Action form
// field for the query protocol (SNS). The responses are built by the
// constructors below in each protocol's wire format: a JSON body with
// "__type" and "message" (DynamoDB, EventBridge), the same plus the
// x-amzn-query-error header that carries the awsQuery-compatible code
// (SQS), and an XML <ErrorResponse> (SNS), each with AWS's HTTP status.
package awsfault

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Response is one HTTP answer.
type Response struct {
	Status int
	Header http.Header
	Body   string
}

// Rule answers requests for Service.Operation with Response.
type Rule struct {
	Service   string // "DynamoDB", "SQS", "EventBridge", "SNS"
	Operation string
	// Match, if set, must occur in the request body (a table or queue name).
	Match string
	// Times is how many matching requests get the fault; 0 means all.
	Times    int
	Response Response
	// Delay, when set, makes the fault a slow service: a matching request
	// is held that long and then forwarded (Response is not used).
	Delay time.Duration
	// Respond, when set, decides per matching request (its body): a
	// non-nil Response answers it, nil forwards it (Response is not used).
	// It may keep state of its own, as a service does.
	Respond func(request []byte) *Response
	// Rewrite, when set, forwards a matching request that Respond did not
	// answer and gives the client rewrite's body instead of the endpoint's
	// (a service state the endpoint does not model, such as an index still
	// being built).
	Rewrite func(request, response []byte) []byte

	hits atomic.Int64
}

// Hits returns how many requests the rule has answered.
func (r *Rule) Hits() int { return int(r.hits.Load()) }

// Proxy is the fault endpoint.
type Proxy struct {
	// URL is the endpoint to give the SDK (a BaseEndpoint).
	URL string

	srv      *httptest.Server
	mu       sync.Mutex
	rules    []*Rule
	seen     map[string]int
	throttle *Throttle
	// entryFaults fail single entries of batch requests (AddEntries).
	entryFaults []*EntryFault
	// open and peak count the requests being answered, and the most at
	// once, by service.operation.
	open, peak map[string]int

	// Long polls answered by short polls (AnswerLongPolls).
	pollEvery time.Duration
	target    string
	client    *http.Client
}

// New starts a fault endpoint forwarding to target.
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parse fault endpoint target: %w", err)
	}
	p := &Proxy{seen: map[string]int{}, open: map[string]int{}, peak: map[string]int{}, target: strings.TrimSuffix(target, "/"),
		client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	rp := httputil.NewSingleHostReverseProxy(u)
	// One upstream connection per request: a pooled keep-alive connection
	// that the endpoint closes as it is reused cuts a response short now
	// and then, and a lost ReceiveMessage answer leaves its messages
	// invisible for their whole visibility timeout.
	rp.Transport = &http.Transport{DisableKeepAlives: true}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		svc, op := Operation(r, body)
		p.mu.Lock()
		p.open[svc+"."+op]++
		p.peak[svc+"."+op] = max(p.peak[svc+"."+op], p.open[svc+"."+op])
		p.mu.Unlock()
		defer func() {
			p.mu.Lock()
			p.open[svc+"."+op]--
			p.mu.Unlock()
		}()
		answer := func(resp Response) {
			for k, vs := range resp.Header {
				w.Header()[k] = vs
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(resp.Body)))
			w.WriteHeader(resp.Status)
			_, _ = io.WriteString(w, resp.Body)
		}
		if resp := p.throttled(svc, op, body); resp != nil {
			p.mu.Lock()
			p.seen[svc+"."+op]++
			p.mu.Unlock()
			answer(*resp)
			return
		}
		if rule := p.match(svc, op, body); rule != nil {
			if rule.Respond != nil {
				if resp := rule.Respond(body); resp != nil {
					answer(*resp)
					return
				}
			} else if rule.Delay <= 0 && rule.Rewrite == nil {
				answer(rule.Response)
				return
			}
			if rule.Delay > 0 {
				select {
				case <-time.After(rule.Delay):
				case <-r.Context().Done():
					return
				}
			}
			if rule.Rewrite != nil {
				rec := httptest.NewRecorder()
				rp.ServeHTTP(rec, r)
				h := rec.Header().Clone()
				// The body changes: its length and checksum go with it.
				h.Del("Content-Length")
				h.Del("X-Amz-Crc32")
				answer(Response{Status: rec.Code, Header: h, Body: string(rule.Rewrite(body, rec.Body.Bytes()))})
				return
			}
		}
		if p.serveEntries(w, r, svc, op, body, rp) {
			return
		}
		if svc == "SQS" && op == "ReceiveMessage" && p.longPoll(w, r, body) {
			return
		}
		rp.ServeHTTP(w, r)
	}))
	p.URL = p.srv.URL
	return p, nil
}

// Close stops the endpoint.
func (p *Proxy) Close() { p.srv.Close() }

// Add installs a rule (rules are tried in the order added) and returns it.
func (p *Proxy) Add(r *Rule) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, r)
	return r
}

// Remove uninstalls a rule.
func (p *Proxy) Remove(r *Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.rules {
		if x == r {
			p.rules = append(p.rules[:i], p.rules[i+1:]...)
			return
		}
	}
}

// PeakConcurrent returns the most requests for service.operation that were
// being answered at once.
func (p *Proxy) PeakConcurrent(service, operation string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.peak[service+"."+operation]
}

// Requests returns how many requests for service.operation arrived,
// faulted or forwarded.
func (p *Proxy) Requests(service, operation string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen[service+"."+operation]
}

func (p *Proxy) match(svc, op string, body []byte) *Rule {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seen[svc+"."+op]++
	for _, r := range p.rules {
		if r.Service != svc || r.Operation != op || (r.Match != "" && !bytes.Contains(body, []byte(r.Match))) {
			continue
		}
		if r.Times > 0 && int(r.hits.Load()) >= r.Times {
			continue
		}
		r.hits.Add(1)
		return r
	}
	return nil
}

var targetPrefixes = map[string]string{
	"DynamoDB_20120810": "DynamoDB",
	"AmazonSQS":         "SQS",
	"AWSEvents":         "EventBridge",
}

// Operation names the AWS service and operation of a request.
func Operation(r *http.Request, body []byte) (service, operation string) {
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		prefix, op, _ := strings.Cut(t, ".")
		if svc, ok := targetPrefixes[prefix]; ok {
			return svc, op
		}
		return prefix, op
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if v, err := url.ParseQuery(string(body)); err == nil {
			// The query protocol is SNS's here (SQS speaks JSON in this SDK).
			return "SNS", v.Get("Action")
		}
	}
	return "", ""
}

const requestID = "c0ffee00-0000-4000-8000-000000000000"

// JSON is an awsJson error: "__type" and "message" in the body, as
// DynamoDB (awsJson 1.0, Content-Type application/x-amz-json-1.0) and
// EventBridge (1.1) send them. typ is the full shape id where the service
// sends one ("com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException").
func JSON(version string, status int, typ, message string, extra map[string]any) Response {
	body := map[string]any{"__type": typ, "message": message}
	for k, v := range extra {
		body[k] = v
	}
	b, _ := json.Marshal(body)
	return Response{Status: status, Header: http.Header{
		"Content-Type":     {"application/x-amz-json-" + version},
		"X-Amzn-Requestid": {requestID},
	}, Body: string(b)}
}

// DynamoDB errors, as DynamoDB sends them.
func DynamoDB(status int, typ, message string) Response {
	return JSON("1.0", status, typ, message, nil)
}

// Common DynamoDB answers.
var (
	DynamoDBThrottling = DynamoDB(400, "com.amazon.coral.availability#ThrottlingException", "Rate of requests exceeds the allowed throughput.")
	// ProvisionedThroughputExceeded is what a provisioned (or on-demand,
	// past its partition limits) table answers.
	DynamoDBProvisionedThroughputExceeded = DynamoDB(400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
		"The level of configured provisioned throughput for the table was exceeded. Consider increasing your provisioning level with the UpdateTable API.")
	DynamoDBRequestLimitExceeded = DynamoDB(400, "com.amazonaws.dynamodb.v20120810#RequestLimitExceeded",
		"Throughput exceeds the current throughput limit for your account. Please contact AWS Support at https://aws.amazon.com/support request a limit increase")
	DynamoDBInternalServerError = DynamoDB(500, "com.amazonaws.dynamodb.v20120810#InternalServerError", "Internal server error")
	DynamoDBServiceUnavailable  = DynamoDB(503, "com.amazonaws.dynamodb.v20120810#ServiceUnavailable", "Service unavailable")
	DynamoDBAccessDenied        = DynamoDB(400, "com.amazon.coral.service#AccessDeniedException",
		"User: arn:aws:sts::123456789012:assumed-role/worker-task/abc is not authorized to perform: dynamodb:TransactWriteItems on resource: arn:aws:dynamodb:us-east-1:123456789012:table/orders because no identity-based policy allows the dynamodb:TransactWriteItems action")
	// DynamoDBIndexLimitExceeded is UpdateTable's answer to a second index
	// created or deleted while one is still being built or removed.
	DynamoDBIndexLimitExceeded = DynamoDB(400, "com.amazonaws.dynamodb.v20120810#LimitExceededException",
		"Subscriber limit exceeded: Only 1 online index can be created or deleted simultaneously per table")
	DynamoDBValidation = DynamoDB(400, "com.amazon.coral.validate#ValidationException",
		"One or more parameter values were invalid: Size of hashkey has exceeded the maximum size limit of 2048 bytes")
)

// TransactionCanceled is DynamoDB's TransactWriteItems cancellation, one
// reason code per item in order ("None" for items that were fine).
func TransactionCanceled(codes ...string) Response {
	reasons := make([]map[string]string, len(codes))
	for i, c := range codes {
		reasons[i] = map[string]string{"Code": c}
		if c == "TransactionConflict" {
			reasons[i]["Message"] = "Transaction is ongoing for the item"
		}
	}
	r := JSON("1.0", 400, "com.amazonaws.dynamodb.v20120810#TransactionCanceledException", "", map[string]any{"CancellationReasons": reasons})
	// DynamoDB spells this one's message "Message".
	var m map[string]any
	_ = json.Unmarshal([]byte(r.Body), &m)
	delete(m, "message")
	m["Message"] = "Transaction cancelled, please refer cancellation reasons for specific reasons [" + strings.Join(codes, ", ") + "]"
	b, _ := json.Marshal(m)
	r.Body = string(b)
	return r
}

// SQS is an SQS error in its JSON protocol: the body's "__type" is the
// JSON shape and x-amzn-query-error carries the awsQuery code clients
// have always seen ("AWS.SimpleQueueService.NonExistentQueue;Sender"),
// which the SDK reports as the error code.
func SQS(status int, typ, queryCode, fault, message string) Response {
	r := JSON("1.0", status, "com.amazonaws.sqs#"+typ, message, nil)
	if queryCode != "" {
		r.Header.Set("X-Amzn-Query-Error", queryCode+";"+fault)
	}
	return r
}

// Common SQS answers.
var (
	SQSThrottled          = SQS(400, "RequestThrottled", "RequestThrottled", "Sender", "Rate exceeded")
	SQSInternalError      = SQS(500, "InternalError", "InternalError", "Receiver", "We encountered an internal error. Please try again.")
	SQSServiceUnavailable = SQS(503, "ServiceUnavailable", "ServiceUnavailable", "Receiver", "Service is unavailable. Please try again later.")
	SQSNonExistentQueue   = SQS(400, "QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "Sender", "The specified queue does not exist.")
	SQSAccessDenied       = Response{Status: 400, Header: http.Header{
		"Content-Type": {"application/x-amz-json-1.0"}, "X-Amzn-Requestid": {requestID},
		"X-Amzn-Query-Error": {"AccessDenied;Sender"},
	}, Body: `{"__type":"com.amazon.coral.service#AccessDeniedException","message":"User: arn:aws:sts::123456789012:assumed-role/worker-task/abc is not authorized to perform: sqs:receivemessage on resource: arn:aws:sqs:us-east-1:123456789012:orders-inventory because no identity-based policy allows the sqs:receivemessage action"}`}
	SQSKMSDisabled = SQS(400, "KmsDisabled", "KMS.DisabledException", "Sender",
		"The request was rejected because the specified customer master key (CMK) is not enabled.")
)

// EventBridge is an EventBridge (awsJson 1.1) error.
func EventBridge(status int, typ, message string) Response {
	return JSON("1.1", status, typ, message, nil)
}

// Common EventBridge answers.
var (
	EventBridgeThrottling   = EventBridge(400, "ThrottlingException", "Rate exceeded")
	EventBridgeInternal     = EventBridge(500, "InternalException", "Internal service error")
	EventBridgeAccessDenied = EventBridge(400, "AccessDeniedException",
		"User: arn:aws:sts::123456789012:assumed-role/worker-task/abc is not authorized to perform: events:PutEvents on resource: arn:aws:events:us-east-1:123456789012:event-bus/orders")
	EventBridgeValidation = EventBridge(400, "ValidationException", "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to 10")
)

// SNS is an SNS (query protocol) error: an XML <ErrorResponse>.
func SNS(status int, code, fault, message string) Response {
	body := `<ErrorResponse xmlns="http://sns.amazonaws.com/doc/2010-03-31/">` +
		`<Error><Type>` + fault + `</Type><Code>` + code + `</Code><Message>` + html.EscapeString(message) + `</Message></Error>` +
		`<RequestId>` + requestID + `</RequestId></ErrorResponse>`
	return Response{Status: status, Header: http.Header{"Content-Type": {"text/xml"}, "X-Amzn-Requestid": {requestID}}, Body: body}
}

// Common SNS answers.
var (
	SNSThrottled     = SNS(429, "Throttled", "Sender", "Rate exceeded")
	SNSInternalError = SNS(500, "InternalError", "Receiver", "Internal Error")
	SNSUnavailable   = SNS(503, "ServiceUnavailable", "Receiver", "Service Unavailable")
	SNSAuthorization = SNS(403, "AuthorizationError", "Sender",
		"User: arn:aws:sts::123456789012:assumed-role/worker-task/abc is not authorized to perform: SNS:Publish on resource: arn:aws:sns:us-east-1:123456789012:orders-notifications")
	// SNSInvalidAction is how a query-protocol endpoint answers an Action
	// it does not have (the common InvalidAction error, HTTP 400).
	SNSInvalidAction = SNS(400, "InvalidAction", "Sender", "Could not find operation PublishBatch for version 2010-03-31")
)
