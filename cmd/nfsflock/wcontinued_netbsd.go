package main

// wcontinued is NetBSD's WCONTINUED, which x/sys does not define.
const wcontinued = 0x10
