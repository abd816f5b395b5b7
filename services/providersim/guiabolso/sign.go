package guiabolso

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"math/big"
	"strconv"
)

// JavaHex renders a MAC as Guiabolso's Kotlin sample does, with Java's
// BigInteger(bytes).toString(16): a signed big-endian number in lower-case hex, without leading
// zeros, "-" and the absolute value's hex when the first bit is set.
func JavaHex(mac []byte) string {
	n := new(big.Int).SetBytes(mac)
	if len(mac) > 0 && mac[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(mac))))
	}
	return n.Text(16)
}

// MAC is HMAC-SHA256(secret, t + "." + body).
func MAC(secret []byte, tMillis int64, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(tMillis, 10) + "."))
	m.Write(body)
	return m.Sum(nil)
}

// Signature is the value of the X-GBC-Signature-256 header for body signed at tMillis: the
// Java rendering by default, canonical hex when asked.
func Signature(secret []byte, tMillis int64, body []byte, canonical bool) string {
	mac := MAC(secret, tMillis, body)
	sig := JavaHex(mac)
	if canonical {
		sig = hex.EncodeToString(mac)
	}
	return "t=" + strconv.FormatInt(tMillis, 10) + ",v1=" + sig
}
