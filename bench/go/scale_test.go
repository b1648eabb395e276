// Go twins of ctx's scale benchmarks (ctx/benches/scale.rs, memory.rs):
// shapes Go's own benchmark_test.go lacks. Run by bench/compare.sh.
package ctxbench

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// One cancel waking 100,000 goroutines blocked on <-ctx.Done(): time from
// the cancel until the last has woken.
func BenchmarkScale_FanOutWake_waiters_100000(b *testing.B) {
	const waiters = 100000
	var total time.Duration
	for i := 0; i < b.N; i++ {
		ctx, cancel := context.WithCancel(context.Background())
		var ready, woken sync.WaitGroup
		ready.Add(waiters)
		woken.Add(waiters)
		for w := 0; w < waiters; w++ {
			go func() {
				done := ctx.Done()
				ready.Done()
				<-done
				woken.Done()
			}()
		}
		ready.Wait()
		// Let every goroutine park on its receive (ctx's twin waits until
		// every waiter has registered).
		time.Sleep(10 * time.Millisecond)
		start := time.Now()
		cancel()
		woken.Wait()
		total += time.Since(start)
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
}

// One cancel reaching 1 + 1,000 + 1,000,000 contexts.
func BenchmarkScale_CancelTree_nodes_1001001(b *testing.B) {
	const fanout = 1000
	var total time.Duration
	for i := 0; i < b.N; i++ {
		root, cancel := context.WithCancel(context.Background())
		cancels := make([]context.CancelFunc, 0, fanout*(fanout+1))
		var last context.Context
		for m := 0; m < fanout; m++ {
			mid, c := context.WithCancel(root)
			for l := 0; l < fanout; l++ {
				leaf, lc := context.WithCancel(mid)
				cancels = append(cancels, lc)
				last = leaf
			}
			cancels = append(cancels, c)
		}
		start := time.Now()
		cancel()
		<-last.Done()
		total += time.Since(start)
		for _, c := range cancels {
			c()
		}
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/op")
}

var sink []context.Context

// Bytes per live cancelable child: 1,000,000 children of one parent,
// runtime.MemStats.HeapAlloc before and after (the slices holding the
// handles are allocated before the first reading).
func TestMemoryPerChild(t *testing.T) {
	const n = 1000000
	parent, pcancel := context.WithCancel(context.Background())
	defer pcancel()
	ctxs := make([]context.Context, n)
	cancels := make([]context.CancelFunc, n)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < n; i++ {
		ctxs[i], cancels[i] = context.WithCancel(parent)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	t.Logf("MemoryPerChild/go %.1f", float64(after.HeapAlloc-before.HeapAlloc)/n)
	sink = ctxs
	runtime.KeepAlive(cancels)
}

// The spin of Go's BenchmarkCommonParentCancel alone, as Go compiles it (the
// division is dead code, so this is two empty 100-step loops); ctx's
// CommonParentCancel/spin-only row is its twin.
func BenchmarkCommonParentCancel_spin_only(b *testing.B) {
	x := 0
	for i := 0; i < b.N; i++ {
		for i := 0; i < 100; i++ {
			x /= x + 1
		}
		for i := 0; i < 100; i++ {
			x /= x + 1
		}
	}
}

// The goroutine of Go's BenchmarkDeepValueNewGoRoutine alone, no lookup;
// ctx's DeepValueNewGoRoutine/spawn-only row is its twin.
func BenchmarkDeepValueNewGoRoutine_spawn_only(b *testing.B) {
	for i := 0; i < b.N; i++ {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
		}()
		wg.Wait()
	}
}

type rootKey struct{}

// Package level, so that the compiler cannot keep the context on the stack.
var valueSink context.Context

// One WithValue, the context dropped: ctx's WithValue row is its twin.
func BenchmarkWithValue(b *testing.B) {
	parent := context.Background()
	for i := 0; i < b.N; i++ {
		valueSink = context.WithValue(parent, rootKey{}, "value")
	}
}

// A hit on the value at the root of a 100-deep chain of other values (Go
// walks all of them): ctx's DeepValueHit/depth=100 row is its twin.
func BenchmarkDeepValueHit_depth_100(b *testing.B) {
	ctx := context.WithValue(context.Background(), rootKey{}, "value")
	for i := 0; i < 99; i++ {
		ctx = context.WithValue(ctx, i, i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ctx.Value(rootKey{}) == nil {
			b.Fatal("lost the root value")
		}
	}
}

// The same hit under 100 cancelable contexts: ctx's
// DeepValueHit/cancel-chain=100 row is its twin.
func BenchmarkDeepValueHit_cancel_chain_100(b *testing.B) {
	ctx := context.WithValue(context.Background(), rootKey{}, "value")
	for i := 0; i < 100; i++ {
		ctx, _ = context.WithCancel(ctx)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if ctx.Value(rootKey{}) == nil {
			b.Fatal("lost the root value")
		}
	}
}
