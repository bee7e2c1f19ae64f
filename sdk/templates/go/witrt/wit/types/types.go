// Package types: the component model's option and result, as wit-bindgen go
// bindings use them.
package types

const (
	OptionNone uint8 = 0
	OptionSome uint8 = 1
)

// Option is a WIT option<T>.
type Option[T any] struct {
	tag   uint8
	value T
}

func None[T any]() Option[T]     { return Option[T]{tag: OptionNone} }
func Some[T any](v T) Option[T]  { return Option[T]{tag: OptionSome, value: v} }
func (o Option[T]) Tag() uint8   { return o.tag }
func (o Option[T]) IsSome() bool { return o.tag == OptionSome }
func (o Option[T]) IsNone() bool { return o.tag == OptionNone }

// Some returns the value; it panics on None.
func (o Option[T]) Some() T {
	if o.tag != OptionSome {
		panic("option is none")
	}
	return o.value
}

const (
	ResultOk  uint8 = 0
	ResultErr uint8 = 1
)

// Result is a WIT result<T, E>.
type Result[T, E any] struct {
	tag uint8
	ok  T
	err E
}

func Ok[T, E any](v T) Result[T, E]  { return Result[T, E]{tag: ResultOk, ok: v} }
func Err[T, E any](e E) Result[T, E] { return Result[T, E]{tag: ResultErr, err: e} }
func (r Result[T, E]) Tag() uint8    { return r.tag }
func (r Result[T, E]) IsOk() bool    { return r.tag == ResultOk }
func (r Result[T, E]) IsErr() bool   { return r.tag == ResultErr }

// Ok returns the value; it panics on an error.
func (r Result[T, E]) Ok() T {
	if r.tag != ResultOk {
		panic("result is an error")
	}
	return r.ok
}

// Err returns the error; it panics on a value.
func (r Result[T, E]) Err() E {
	if r.tag != ResultErr {
		panic("result is not an error")
	}
	return r.err
}
