/*
 * bcryptprimitives.c builds the bcryptprimitives.dll that .ci/wine installs
 * into its Wine prefix. Go's runtime (1.24 and later) takes its random
 * bytes from ProcessPrng in bcryptprimitives.dll, which Wine 8 (Debian 12's
 * wine) does not have, so Go programs die at start-up there. This DLL
 * provides ProcessPrng and nothing else, on top of advapi32's
 * SystemFunction036 (RtlGenRandom), which Wine has.
 *
 *   x86_64-w64-mingw32-gcc -shared -O2 -o bcryptprimitives.dll bcryptprimitives.c -ladvapi32
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

/* ProcessPrng fills data with size random bytes and returns TRUE, as the
 * real one does (FALSE only if RtlGenRandom fails). RtlGenRandom takes a
 * ULONG, so large requests go in pieces. */
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size)
{
	while (size > 0) {
		ULONG n = size > 0x10000000 ? 0x10000000 : (ULONG)size;
		if (!SystemFunction036(data, n))
			return FALSE;
		data += n;
		size -= n;
	}
	return TRUE;
}
