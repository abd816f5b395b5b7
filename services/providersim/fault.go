package providersim

import "net/http"

// Drop closes the connection under a request without answering: what an upstream that dies
// mid-call looks like to its client.
func Drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler) // the server closes the connection itself
}
