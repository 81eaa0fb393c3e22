package main

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Text read from a lock file (the holder's hostname, in nfsflock's messages
// and in flock's errors) is written by whoever can write the lock's
// directory. Printed raw, an escape sequence in it could clear the screen
// or move the cursor, and a newline could forge a line of nfsflock's own.
// So nothing nfsflock prints carries a character that does not print.

// quoted returns s as it is if every character of it prints as itself,
// and otherwise quoted as a Go string ("evil\x1b[2J\nfake"), so that where
// it begins and ends stays plain too.
func quoted(s string) string {
	q := strconv.Quote(s)
	if q[1:len(q)-1] == s {
		return s
	}
	return q
}

// printable returns message with every character that does not print
// (control characters, U+009B and the other C1 controls, format
// characters, bytes that are not UTF-8) written as strconv.Quote writes
// it: \n, \x1b, \u009b.
func printable(message string) string {
	if isPrintable(message) {
		return message
	}
	var b strings.Builder
	for i := 0; i < len(message); {
		r, size := utf8.DecodeRuneInString(message[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, message[i])
		case unicode.IsPrint(r):
			b.WriteString(message[i : i+size])
		default:
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}

func isPrintable(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !unicode.IsPrint(r) {
			return false
		}
		i += size
	}
	return true
}

// warnf writes one line, "nfsflock: " and the message, to w, with the
// characters of the message that do not print escaped.
func warnf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, "nfsflock: %s\n", printable(fmt.Sprintf(format, args...)))
}

// printJSON writes the JSON encoding of JSON text with the characters that
// encoding/json leaves as they are but that do not print (DEL, U+009B and
// the other C1 controls, format characters) escaped as \uXXXX. Outside
// its strings JSON text is printable ASCII, spaces and newlines, so only
// strings change, and they decode to what they were.
func printJSON(w io.Writer, text []byte) error {
	var b bytes.Buffer
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRune(text[i:])
		switch {
		case r == '\n' || unicode.IsPrint(r) || (r == utf8.RuneError && size == 1):
			// encoding/json has replaced bytes that are not UTF-8 already.
			b.Write(text[i : i+size])
		case r > 0xffff:
			r1, r2 := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, r1, r2)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	_, err := w.Write(b.Bytes())
	return err
}
