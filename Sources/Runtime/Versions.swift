import CFFTW
import CZlib

public enum NativeVersions {
    public static var fftw: String { String(cString: cfftw_version()) }
    public static var zlib: String { String(cString: czlib_version()) }
}
