package scaleout_test

import (
	"testing"

	"puente.dev/pkg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
