import Runtime

// Must run before anything touches MPI or threads: it may re-execute the binary with a faster
// OpenBLAS kernel set.
BLASCore.selectFastCoreOrReexec()
SFKDCommand.main()
