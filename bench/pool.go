package bench

import (
	"iter"
	"sync"
)

// pool runs f on workers goroutines for every job jobs yields, and returns
// when all have run. jobs runs on the caller's goroutine and may stop early
// (a budget spent, an error seen); f counts its own failures.
func pool(workers int, jobs iter.Seq[int], f func(i int)) {
	work := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range work {
				f(i)
			}
		})
	}
	for i := range jobs {
		work <- i
	}
	close(work)
	wg.Wait()
}

// upTo yields 0..n-1.
func upTo(n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := 0; i < n && yield(i); i++ {
		}
	}
}

// forEach runs f for 0..n-1 on workers goroutines and returns the first
// error any call returned.
func forEach(n, workers int, f func(i int) error) error {
	var first firstError
	pool(workers, upTo(n), func(i int) {
		if err := f(i); err != nil {
			first.set(err)
		}
	})
	return first.get()
}
