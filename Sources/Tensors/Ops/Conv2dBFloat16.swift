/// `conv2d` at bfloat16: on oneDNN's bfloat16 primitives where the CPU has them and oneDNN has
/// a convolution kernel for the shape; otherwise the inputs rounded to bfloat16 go through the
/// float32 kernels (the emulation, and the shapes sfkd runs with its own loops).
extension ConvPlan {
    /// This plan on oneDNN's bfloat16 primitives, or nil where they do not run it (emulated
    /// arithmetic, a kernel other than oneDNN pinned, no convolution kernel for the shape).
    var nativeBFloat16: ConvPlan? {
        guard BFloat16Arithmetic.effective == .native else { return nil }
        switch ConvolutionKernel.choice {
        case .unfold, .direct, .channelLanes: return nil
        case .automatic, .oneDNN: break
        }
        var plan = self
        plan.precision = .bfloat16
        guard plan.oneDNN(images: min(batch, parallelChunking(batch).perChunk))?.hasConvolutionKernel == true
        else { return nil }
        return plan
    }

    var inputCount: Int { batch * inChannels * inPlane }
    var weightCount: Int { outChannels * columnsRows }
    var gyCount: Int { batch * outChannels * outPlane }

    /// A copy of `count` values rounded to bfloat16.
    func rounded(_ values: UnsafePointer<Float>, count: Int) -> Tensor {
        let copy = Tensor(uninitializedShape: [count])
        BFloat16.round(values, into: copy.data, count: count)
        return copy
    }

    func forward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>, precision: Precision
    ) {
        guard precision == .bfloat16 else { return forward(x, w, b, y) }
        if let native = nativeBFloat16, native.forwardOnOneDNN(x, w, b, y) { return }
        // The rounded copies are held until the kernel returns: it reads them through pointers
        // and takes its own buffers from the pool, which must not hand it theirs.
        let (xr, wr) = (rounded(x, count: inputCount), rounded(w, count: weightCount))
        withExtendedLifetime((xr, wr)) { forward(xr.data, wr.data, b, y) }
    }

    func backward(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gy: UnsafePointer<Float>,
        _ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?, precision: Precision
    ) {
        guard precision == .bfloat16 else { return backward(x, w, gy, gx, gw) }
        if let native = nativeBFloat16, native.backwardOnOneDNN(x, w, gy, gx, gw) { return }
        // Only what each gradient reads: the weight for gx, the input for gw.
        let xr = gw == nil ? nil : rounded(x, count: inputCount)
        let wr = gx == nil ? nil : rounded(w, count: weightCount)
        let gyr = rounded(gy, count: gyCount)
        withExtendedLifetime((xr, wr, gyr)) {
            backward(xr.map { UnsafePointer($0.data) } ?? x, wr.map { UnsafePointer($0.data) } ?? w, gyr.data, gx, gw)
        }
    }
}
