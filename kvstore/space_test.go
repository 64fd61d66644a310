package kvstore

import (
	"errors"
	"testing"
)

func TestSpaceRefusesBelowTheReserve(t *testing.T) {
	cases := []struct {
		name          string
		reserve, free uint64
		statErr       error
		full          bool
	}{
		{"room", 100, 1000, nil, false},
		{"at the reserve", 100, 100, nil, false},
		{"below", 100, 99, nil, true},
		{"disabled", 0, 0, nil, false},
		{"unknown free space keeps the last reading", 100, 0, errors.New("statfs failed"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := NewSpace("/data", c.reserve, func(string) (uint64, error) { return c.free, c.statErr }, quiet)
			err := s.Check()
			if full := errors.Is(err, ErrFull); full != c.full {
				t.Fatalf("Check() = %v, want full %v", err, c.full)
			}
			if full := errors.Is(s.Err(), ErrFull); full != c.full {
				t.Fatalf("Err() = %v, want full %v", s.Err(), c.full)
			}
		})
	}
	var nilSpace *Space
	if nilSpace.Check() != nil || nilSpace.Err() != nil {
		t.Fatal("a nil Space must allow every write")
	}
}
