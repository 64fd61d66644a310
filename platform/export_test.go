package platform

// SetFreeSpace replaces how servers started after it measure the data dir's
// free space (kvstore.StatFree), until the returned func restores it.
func SetFreeSpace(f func(dir string) (uint64, error)) (restore func()) {
	old := freeSpace
	freeSpace = f
	return func() { freeSpace = old }
}
