package ids_test

import (
	"fmt"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"puente.dev/pkg/ids"
)

func TestNewIsValidAndSortsByTime(t *testing.T) {
	var made []string
	for range 1000 {
		id := ids.New("usr")
		require.True(t, ids.Valid("usr", id), id)
		made = append(made, id)
	}
	require.True(t, sort.StringsAreSorted(made), "ids made one after another sort in creation order")
}

func TestValidRejects(t *testing.T) {
	good := ids.New("usr")
	for name, id := range map[string]string{
		"another prefix":      "key" + good[3:],
		"no prefix":           good[4:],
		"short body":          good[:len(good)-1],
		"lower case body":     "usr_" + "01jd0000000000000000000000",
		"letters outside set": "usr_01JD00000000000000000000IL",
		"empty":               "",
	} {
		t.Run(name, func(t *testing.T) { require.False(t, ids.Valid("usr", id)) })
	}
}

func ExampleNew() {
	id := ids.New("cns")
	fmt.Println(id[:4], len(id))
	// Output: cns_ 30
}
