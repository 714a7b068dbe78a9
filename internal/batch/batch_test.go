package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu      sync.Mutex
	batches [][]int
	release chan struct{}
}

func (r *recorder) flush(_ context.Context, items []int) []error {
	if r.release != nil {
		<-r.release
	}
	r.mu.Lock()
	r.batches = append(r.batches, append([]int(nil), items...))
	r.mu.Unlock()
	errs := make([]error, len(items))
	for i, it := range items {
		if it%7 == 0 {
			errs[i] = fmt.Errorf("item %d failed", it)
		}
	}
	return errs
}

func TestFullBatchesGoAtOnceAndEachCallerGetsItsOwnResult(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := New(Config{Max: 10, Linger: time.Hour}, r.flush)
	var wg sync.WaitGroup
	results := make([]error, 30)
	for i := 1; i <= 30; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); results[i-1] = b.Do(context.Background(), i) }(i)
	}
	wg.Wait() // a one-hour linger would hang here unless full batches are sent at once
	b.Close()
	if len(r.batches) != 3 {
		t.Fatalf("%d batches, want 3 of 10", len(r.batches))
	}
	for _, bt := range r.batches {
		if len(bt) != 10 {
			t.Fatalf("batch of %d, want 10", len(bt))
		}
	}
	for i, err := range results {
		item := i + 1
		if (item%7 == 0) != (err != nil) {
			t.Errorf("item %d: err = %v", item, err)
		}
	}
}

func TestLingerSendsAPartialBatch(t *testing.T) {
	t.Parallel()
	r := &recorder{}
	b := New(Config{Max: 10, Linger: time.Millisecond}, r.flush)
	defer b.Close()
	for i := 1; i <= 3; i++ {
		if err := b.Do(context.Background(), i); err != nil {
			t.Fatal(err)
		}
	}
	if len(r.batches) == 0 {
		t.Fatal("nothing was sent")
	}
}

func TestWholeBatchErrorReachesEveryCaller(t *testing.T) {
	t.Parallel()
	boom := errors.New("throttled")
	b := New(Config{Max: 3, Linger: time.Hour}, func(context.Context, []string) []error { return []error{boom} })
	defer b.Close()
	chans := []<-chan error{b.Submit("a"), b.Submit("b"), b.Submit("c")}
	for _, ch := range chans {
		if err := <-ch; !errors.Is(err, boom) {
			t.Fatalf("err = %v, want the batch error", err)
		}
	}
}

func TestCloseFlushesPendingAndRefusesMore(t *testing.T) {
	t.Parallel()
	r := &recorder{release: make(chan struct{})}
	b := New(Config{Max: 10, Linger: time.Hour}, r.flush)
	ch := b.Submit(1)
	done := make(chan struct{})
	go func() { b.Close(); close(done) }()
	close(r.release)
	<-done
	if err := <-ch; err != nil {
		t.Fatalf("pending item: %v", err)
	}
	if len(r.batches) != 1 {
		t.Fatalf("Close sent %d batches, want 1", len(r.batches))
	}
	if err := <-b.Submit(2); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
	b.Close() // idempotent
}

func TestCallerContextEndsTheWait(t *testing.T) {
	t.Parallel()
	r := &recorder{release: make(chan struct{})}
	b := New(Config{Max: 1}, r.flush)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := b.Do(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	close(r.release)
	b.Close()
}

// A batch never waits for another one's flush, whether a flusher goroutine
// is idle or busy; flushers kept between batches are ended by Close.
func TestFlushesRunConcurrentlyAndReuseIdleFlushers(t *testing.T) {
	blocked := make(chan struct{})
	var calls sync.WaitGroup
	calls.Add(1)
	b := New(Config{Max: 1}, func(_ context.Context, items []int) []error {
		if items[0] == 1 {
			calls.Done()
			<-blocked // the first batch holds its flusher
		}
		return nil
	})
	first := b.Submit(1)
	calls.Wait()
	// The only flusher is busy: these must still go, one after another,
	// through flushers that become idle in between.
	for i := 2; i <= 5; i++ {
		if err := <-b.Submit(i); err != nil {
			t.Fatalf("batch %d: %v", i, err)
		}
	}
	select {
	case err := <-first:
		t.Fatalf("the blocked batch returned early: %v", err)
	default:
	}
	close(blocked)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := <-b.Submit(6); !errors.Is(err, ErrClosed) {
		t.Fatalf("submit after close: %v, want ErrClosed", err)
	}
}

// A flush that does not return (a service in a brownout) holds at most
// MaxFlushes goroutines in flush and MaxItems items: later submitters wait
// for room instead of piling up, and once the service answers every item
// gets its outcome, none lost.
func TestSlowFlushesAreBoundedAndSubmittersWait(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	inFlush, peakFlush, done := 0, 0, 0
	flush := func(_ context.Context, items []int) []error {
		mu.Lock()
		inFlush++
		peakFlush = max(peakFlush, inFlush)
		mu.Unlock()
		<-release
		mu.Lock()
		inFlush--
		mu.Unlock()
		return nil
	}
	b := New(Config{Max: 10, Linger: time.Millisecond, MaxFlushes: 3, MaxItems: 60}, flush)
	const items = 500
	var submitted sync.WaitGroup
	var returned sync.WaitGroup
	var submittedCount sync.Mutex
	n := 0
	for i := range items {
		submitted.Add(1)
		returned.Add(1)
		go func() {
			defer returned.Done()
			ch := b.Submit(i)
			submittedCount.Lock()
			n++
			submittedCount.Unlock()
			submitted.Done()
			if err := <-ch; err != nil {
				t.Errorf("item %d: %v", i, err)
			}
			mu.Lock()
			done++
			mu.Unlock()
		}()
	}
	// While the service hangs, exactly MaxItems submissions are accepted
	// and MaxFlushes flushes start; the rest wait.
	deadline := time.Now().Add(10 * time.Second)
	for {
		submittedCount.Lock()
		got := n
		submittedCount.Unlock()
		mu.Lock()
		flushing := inFlush
		mu.Unlock()
		if got == 60 && flushing == 3 {
			break
		}
		if got > 60 || flushing > 3 || time.Now().After(deadline) {
			t.Fatalf("with the service hanging: %d items accepted, %d flushes running; want 60 and 3", got, flushing)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	submitted.Wait()
	returned.Wait()
	b.Close()
	if done != items || peakFlush > 3 {
		t.Fatalf("%d of %d items got their outcome, at most %d flushes at once; want all, at most 3", done, items, peakFlush)
	}
}
