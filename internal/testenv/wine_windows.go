package testenv

import (
	"sync"

	"golang.org/x/sys/windows"
)

// Wine reports whether this Windows process runs under Wine, whose ntdll
// exports wine_get_version, so that a test can say which of its checks
// Wine cannot answer as Windows would.
var Wine = sync.OnceValue(func() bool {
	return windows.NewLazySystemDLL("ntdll.dll").NewProc("wine_get_version").Find() == nil
})
