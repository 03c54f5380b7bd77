import CFFTW
import CZlib

/// Versions of the native libraries `sfkd info` reports (OpenBLAS's and MPI's come from Tensors and Cluster).
enum NativeVersions {
    static var fftw: String { String(cString: cfftw_version()) }
    static var zlib: String { String(cString: czlib_version()) }
}
