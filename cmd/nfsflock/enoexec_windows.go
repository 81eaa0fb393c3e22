package main

// shellFallback reports false: Windows runs no file without a program's
// format by a shell, and neither does nfsflock.
func shellFallback(prog string, argv []string, err error) (string, []string, bool) {
	return "", nil, false
}
