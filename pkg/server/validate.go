package server

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"puente.dev/pkg/apierr"
)

// Every request is checked against the protovalidate rules of its proto before a handler sees it,
// and for NUL characters in any string, which Postgres cannot store (and which have no business
// in an id, a name or a URL).

type validator struct{ v protovalidate.Validator }

func newValidator() (*validator, error) {
	v, err := protovalidate.New()
	if err != nil {
		return nil, fmt.Errorf("server: protovalidate: %w", err)
	}
	return &validator{v: v}, nil
}

func (v *validator) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if m, ok := req.(proto.Message); ok {
		if err := v.check(m); err != nil {
			return nil, err
		}
	}
	return handler(ctx, req)
}

func (v *validator) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &validatingStream{ServerStream: ss, v: v})
}

type validatingStream struct {
	grpc.ServerStream
	v *validator
}

func (s *validatingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if pm, ok := m.(proto.Message); ok {
		return s.v.check(pm)
	}
	return nil
}

func (v *validator) check(m proto.Message) error {
	var fields []apierr.FieldViolation
	if field := nulField(m.ProtoReflect(), ""); field != "" {
		fields = append(fields, apierr.FieldViolation{Field: field, Reason: "must not contain NUL characters"})
	}
	var ve *protovalidate.ValidationError
	if err := v.v.Validate(m); errors.As(err, &ve) {
		for _, viol := range ve.Violations {
			field := protovalidate.FieldPathString(viol.Proto.GetField())
			reason := viol.Proto.GetMessage()
			if reason == "" {
				reason = viol.Proto.GetRuleId()
			}
			fields = append(fields, apierr.FieldViolation{Field: field, Reason: reason})
		}
	} else if err != nil {
		return fmt.Errorf("validate %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	if len(fields) == 0 {
		return nil
	}
	msgs := make([]string, len(fields))
	for i, f := range fields {
		msgs[i] = f.Reason
		if f.Field != "" {
			msgs[i] = f.Field + ": " + f.Reason
		}
	}
	return &apierr.Error{Kind: apierr.InvalidArgument, Reason: "INVALID_ARGUMENT", Message: strings.Join(msgs, "; "), Fields: fields}
}

func nulField(m protoreflect.Message, prefix string) (field string) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				if f := nulValue(fd, l.Get(i), fmt.Sprintf("%s[%d]", name, i)); f != "" {
					field = f
					return false
				}
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if strings.ContainsRune(k.String(), 0) {
					field = name
				} else {
					field = nulValue(fd.MapValue(), mv, name+"["+k.String()+"]")
				}
				return field == ""
			})
		default:
			field = nulValue(fd, v, name)
		}
		return field == ""
	})
	return field
}

func nulValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, name string) string {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if strings.ContainsRune(v.String(), 0) {
			return name
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return nulField(v.Message(), name+".")
	}
	return ""
}
