package metrics

import "sync"

// Children caches the children of a metric vector by a comparable key, so
// a hot path looks a child up in a map under a read lock instead of
// hashing and validating its label values on every use (the vector's
// WithLabelValues). Safe for concurrent use.
type Children[K comparable, M any] struct {
	mu    sync.RWMutex
	m     map[K]M
	child func(K) M
}

// NewChildren returns a cache that makes a missing child with child (a
// call of the vector's WithLabelValues).
func NewChildren[K comparable, M any](child func(K) M) *Children[K, M] {
	return &Children[K, M]{m: map[K]M{}, child: child}
}

// Get returns the child for k, making it on first use.
func (c *Children[K, M]) Get(k K) M {
	c.mu.RLock()
	v, ok := c.m[k]
	c.mu.RUnlock()
	if ok {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[k]; ok {
		return v
	}
	v = c.child(k)
	c.m[k] = v
	return v
}
