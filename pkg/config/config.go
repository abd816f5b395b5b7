// Package config fills a configuration struct from environment variables named in its tags:
//
//	type Config struct {
//		Addr    string        `env:"PUENTE_GRPC_ADDR" default:":9090"`
//		Timeout time.Duration `env:"PUENTE_TIMEOUT" default:"5s"`
//	}
//
// Supported field types: string, bool, int, int64, time.Duration and []string (comma-separated).
// Nested structs are filled too. Each service keeps one such struct and validates it at start.
package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Load fills the struct dst points to from lookup (os.LookupEnv in production).
func Load(dst any, lookup func(string) (string, bool)) error {
	v := reflect.ValueOf(dst)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: Load needs a pointer to a struct, got %T", dst)
	}
	return load(v.Elem(), lookup)
}

func load(v reflect.Value, lookup func(string) (string, bool)) error {
	t := v.Type()
	for i := range t.NumField() {
		f, fv := t.Field(i), v.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Tag.Get("env")
		if name == "" {
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
				if err := load(fv, lookup); err != nil {
					return err
				}
			}
			continue
		}
		raw, ok := lookup(name)
		if !ok || raw == "" {
			raw, ok = f.Tag.Lookup("default")
			if !ok {
				continue
			}
		}
		if err := set(fv, raw); err != nil {
			// The value is not repeated: it may be a secret.
			return fmt.Errorf("config: %s: %w", name, err)
		}
	}
	return nil
}

func set(v reflect.Value, raw string) error {
	switch v.Interface().(type) {
	case time.Duration:
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("not a duration (like 90s or 15m)")
		}
		v.SetInt(int64(d))
		return nil
	case []string:
		var items []string
		for item := range strings.SplitSeq(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("not a boolean (true or false)")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
		v.SetInt(n)
	case reflect.Float64:
		f, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("not a number")
		}
		v.SetFloat(f)
	default:
		return fmt.Errorf("unsupported field type %s", v.Type())
	}
	return nil
}
