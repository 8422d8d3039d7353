// Package bench is the harness of ferry bench: it starts "ferry serve" and
// the clients as child processes, and reads what they used (wall time, CPU,
// peak memory) from the kernel, through rusage and /proc.
package bench
