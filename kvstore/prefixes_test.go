package kvstore

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestKeyPrefixesAreListed: every key prefix the platform's packages write
// ([]byte("xx/...) in non-test code) is in the package doc's list, so the
// list is the one place to see who owns which keys.
func TestKeyPrefixesAreListed(t *testing.T) {
	doc, err := os.ReadFile("kvstore.go")
	if err != nil {
		t.Fatal(err)
	}
	list := string(doc[:strings.Index(string(doc), "package kvstore")])
	lit := regexp.MustCompile(`\[\]byte\("([a-z]+/)`)
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(src), -1) {
			if !regexp.MustCompile(`(^|[\s/])` + regexp.QuoteMeta(m[1])).MatchString(list) {
				t.Errorf("%s writes keys under %q, which kvstore's package doc does not list", path, m[1])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
