/// Geometry of a 2-D convolution or pooling window over one image plane.
public struct ConvGeometry: Equatable, Sendable {
    public var inputHeight, inputWidth: Int
    public var kernelHeight, kernelWidth: Int
    public var strideHeight, strideWidth: Int
    public var paddingHeight, paddingWidth: Int

    public var outputHeight: Int { (inputHeight + 2 * paddingHeight - kernelHeight) / strideHeight + 1 }
    public var outputWidth: Int { (inputWidth + 2 * paddingWidth - kernelWidth) / strideWidth + 1 }

    /// Output columns [start, end) whose window column `kx` lands inside the image.
    @inline(__always)
    func validColumns(kx: Int) -> (Int, Int) {
        let offset = kx - paddingWidth
        // need 0 <= ox*stride + offset < inputWidth
        let start = offset >= 0 ? 0 : (-offset + strideWidth - 1) / strideWidth
        let limit = inputWidth - offset  // ox*stride < limit
        let end = limit <= 0 ? 0 : min(outputWidth, (limit + strideWidth - 1) / strideWidth)
        return (start, max(start, end))
    }
}

/// Unfolds `channels` planes of one image into a (channels*kh*kw, outH*outW) matrix.
public func im2col(_ input: UnsafePointer<Float>, channels: Int, geometry g: ConvGeometry, into columns: UnsafeMutablePointer<Float>) {
    let outH = g.outputHeight, outW = g.outputWidth
    let plane = g.inputHeight * g.inputWidth
    var row = 0
    for c in 0..<channels {
        let source = input + c * plane
        for ky in 0..<g.kernelHeight {
            for kx in 0..<g.kernelWidth {
                let destination = columns + row * outH * outW
                let (xStart, xEnd) = g.validColumns(kx: kx)
                for oy in 0..<outH {
                    let iy = oy * g.strideHeight + ky - g.paddingHeight
                    let line = destination + oy * outW
                    if iy < 0 || iy >= g.inputHeight {
                        line.update(repeating: 0, count: outW)
                        continue
                    }
                    if xStart > 0 { line.update(repeating: 0, count: xStart) }
                    if xEnd < outW { (line + xEnd).update(repeating: 0, count: outW - xEnd) }
                    let sourceLine = source + iy * g.inputWidth + kx - g.paddingWidth
                    if g.strideWidth == 1 {
                        (line + xStart).update(from: sourceLine + xStart, count: xEnd - xStart)
                    } else {
                        let s = g.strideWidth
                        for ox in xStart..<xEnd { line[ox] = sourceLine[ox * s] }
                    }
                }
                row += 1
            }
        }
    }
}

/// Folds a (channels*kh*kw, outH*outW) matrix back, adding into `output` (the adjoint of im2col).
public func col2imAdd(_ columns: UnsafePointer<Float>, channels: Int, geometry g: ConvGeometry, into output: UnsafeMutablePointer<Float>) {
    let outH = g.outputHeight, outW = g.outputWidth
    let plane = g.inputHeight * g.inputWidth
    var row = 0
    for c in 0..<channels {
        let destinationPlane = output + c * plane
        for ky in 0..<g.kernelHeight {
            for kx in 0..<g.kernelWidth {
                let source = columns + row * outH * outW
                let (xStart, xEnd) = g.validColumns(kx: kx)
                for oy in 0..<outH {
                    let iy = oy * g.strideHeight + ky - g.paddingHeight
                    if iy < 0 || iy >= g.inputHeight { continue }
                    let line = source + oy * outW
                    let destinationLine = destinationPlane + iy * g.inputWidth + kx - g.paddingWidth
                    if g.strideWidth == 1 {
                        for ox in xStart..<xEnd { destinationLine[ox] += line[ox] }
                    } else {
                        let s = g.strideWidth
                        for ox in xStart..<xEnd { destinationLine[ox * s] += line[ox] }
                    }
                }
                row += 1
            }
        }
    }
}
