/// Geometry of a 2-D convolution or pooling window over one image plane.
public struct ConvGeometry: Equatable, Sendable {
    public var inputHeight, inputWidth: Int
    public var kernelHeight, kernelWidth: Int
    public var strideHeight, strideWidth: Int
    public var paddingHeight, paddingWidth: Int

    public init(
        inputHeight: Int, inputWidth: Int, kernelHeight: Int, kernelWidth: Int,
        strideHeight: Int, strideWidth: Int, paddingHeight: Int, paddingWidth: Int
    ) {
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideHeight = strideHeight
        self.strideWidth = strideWidth
        self.paddingHeight = paddingHeight
        self.paddingWidth = paddingWidth
    }

    public var outputHeight: Int { (inputHeight + 2 * paddingHeight - kernelHeight) / strideHeight + 1 }
    public var outputWidth: Int { (inputWidth + 2 * paddingWidth - kernelWidth) / strideWidth + 1 }

    /// Output rows [start, end) whose window row `ky` lands inside the image.
    @inline(__always)
    func validRows(ky: Int) -> (Int, Int) {
        let offset = ky - paddingHeight
        let start = offset >= 0 ? 0 : (-offset + strideHeight - 1) / strideHeight
        let limit = inputHeight - offset
        let end = limit <= 0 ? 0 : min(outputHeight, (limit + strideHeight - 1) / strideHeight)
        return (start, max(start, end))
    }

    /// Output columns [start, end) whose window column `kx` lands inside the image.
    @inline(__always)
    /// The kernel rows that touch the input for some output row (with a 7x7 kernel padded by 3
    /// on a 1x1 plane, only the middle one).
    var validKernelRows: Range<Int> {
        let first = max(0, paddingHeight - (outputHeight - 1) * strideHeight)
        let end = min(kernelHeight, inputHeight + paddingHeight)
        return first..<max(first, end)
    }

    func validColumns(kx: Int) -> (Int, Int) {
        let offset = kx - paddingWidth
        // need 0 <= ox*stride + offset < inputWidth
        let start = offset >= 0 ? 0 : (-offset + strideWidth - 1) / strideWidth
        let limit = inputWidth - offset  // ox*stride < limit
        let end = limit <= 0 ? 0 : min(outputWidth, (limit + strideWidth - 1) / strideWidth)
        return (start, max(start, end))
    }
}

/// Unfolds `channels` planes of one image into a (channels*kh*kw, rows.count*outW) matrix
/// covering output rows `rows` (all rows by default); matrix rows are `rowStride` floats apart
/// (default: packed), so several images can be unfolded side by side.
/// Rows outside the image are zero-filled as one block; each remaining row is an inline copy
/// (memcpy and memset calls cost more than the short rows they would move).
public func im2col(
    _ input: UnsafePointer<Float>, channels: Int, geometry g: ConvGeometry, rows: Range<Int>? = nil,
    rowStride: Int? = nil, into columns: UnsafeMutablePointer<Float>
) {
    let rows = rows ?? 0..<g.outputHeight
    let outW = g.outputWidth, outPlane = rows.count * outW
    let plane = g.inputHeight * g.inputWidth
    let s = g.strideWidth
    var row = 0
    for c in 0..<channels {
        let source = input + c * plane
        for ky in 0..<g.kernelHeight {
            let (validStart, validEnd) = g.validRows(ky: ky)
            // Rows local to the chunk: [yStart, yEnd) are inside the image.
            let yStart = min(max(validStart, rows.lowerBound), rows.upperBound) - rows.lowerBound
            let yEnd = max(min(validEnd, rows.upperBound), rows.lowerBound) - rows.lowerBound
            let localRows = rows.count
            for kx in 0..<g.kernelWidth {
                let destination = columns + row * (rowStride ?? outPlane)
                if yStart > 0 { destination.update(repeating: 0, count: yStart * outW) }
                if yEnd < localRows {
                    (destination + max(yEnd, yStart) * outW).update(
                        repeating: 0, count: (localRows - max(yEnd, yStart)) * outW)
                }
                let (xStart, xEnd) = g.validColumns(kx: kx)
                if s == 1 && outW == g.inputWidth && yEnd > yStart {
                    // "Same" padding: every row is the source row shifted by kx - pad, so the
                    // whole valid block is one contiguous copy; the columns that wrapped onto a
                    // neighbouring row are zeroed after. The copy is trimmed so that it never
                    // reads outside this plane.
                    let shift = kx - g.paddingWidth
                    let block = destination + yStart * outW
                    let from = source + (yStart + rows.lowerBound + ky - g.paddingHeight) * g.inputWidth + shift
                    let lead = max(0, -shift), trail = max(0, shift)
                    let count = (yEnd - yStart) * outW - lead - trail
                    if count > 0 { (block + lead).update(from: from + lead, count: count) }
                    if xStart > 0 || xEnd < outW {
                        for oy in yStart..<yEnd {
                            let line = destination + oy * outW
                            for ox in 0..<xStart { line[ox] = 0 }
                            for ox in xEnd..<outW { line[ox] = 0 }
                        }
                    }
                    row += 1
                    continue
                }
                for oy in yStart..<max(yStart, yEnd) {
                    let line = destination + oy * outW
                    let sourceLine =
                        source + ((oy + rows.lowerBound) * g.strideHeight + ky - g.paddingHeight) * g.inputWidth + kx
                        - g.paddingWidth
                    for ox in 0..<xStart { line[ox] = 0 }
                    if s == 1 {
                        for ox in xStart..<xEnd { line[ox] = sourceLine[ox] }
                    } else {
                        for ox in xStart..<xEnd { line[ox] = sourceLine[ox * s] }
                    }
                    for ox in xEnd..<outW { line[ox] = 0 }
                }
                row += 1
            }
        }
    }
}

/// Folds a (channels*kh*kw, outH*outW) matrix back, adding into `output` (the adjoint of im2col).
public func col2imAdd(
    _ columns: UnsafePointer<Float>, channels: Int, geometry g: ConvGeometry, into output: UnsafeMutablePointer<Float>
) {
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

/// im2col for small planes as a gather through a table built once per convolution: on 2x2 to
/// 8x8 planes (DS2S's wavelet bands, the last stages) `im2col`'s per-row copies and zero fills
/// are mostly call overhead. The table holds, for every (ky, kx, output position), the source
/// index in the plane, or `inPlane` for padding, which reads a zero appended to a copy of the plane.
struct PlaneGather {
    let geometry: ConvGeometry
    let indices: [Int32]

    init(geometry g: ConvGeometry) {
        geometry = g
        let inPlane = g.inputHeight * g.inputWidth
        var indices: [Int32] = []
        indices.reserveCapacity(g.kernelHeight * g.kernelWidth * g.outputHeight * g.outputWidth)
        for ky in 0..<g.kernelHeight {
            for kx in 0..<g.kernelWidth {
                for oy in 0..<g.outputHeight {
                    for ox in 0..<g.outputWidth {
                        let iy = oy * g.strideHeight + ky - g.paddingHeight,
                            ix = ox * g.strideWidth + kx - g.paddingWidth
                        let inside = iy >= 0 && iy < g.inputHeight && ix >= 0 && ix < g.inputWidth
                        indices.append(Int32(inside ? iy * g.inputWidth + ix : inPlane))
                    }
                }
            }
        }
        self.indices = indices
    }

    /// Floats of scratch `unfold` needs: one plane and its zero.
    var scratchCount: Int { geometry.inputHeight * geometry.inputWidth + 1 }

    /// Same result as `im2col(input, channels:, geometry:, rowStride:, into:)`.
    func unfold(
        _ input: UnsafePointer<Float>, channels: Int, rowStride: Int, into columns: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>
    ) {
        let inPlane = geometry.inputHeight * geometry.inputWidth,
            outPlane = geometry.outputHeight * geometry.outputWidth
        let kernelArea = geometry.kernelHeight * geometry.kernelWidth
        scratch[inPlane] = 0
        indices.withUnsafeBufferPointer { table in
            let table = table.baseAddress!
            for c in 0..<channels {
                scratch.update(from: input + c * inPlane, count: inPlane)
                for k in 0..<kernelArea {
                    let destination = columns + (c * kernelArea + k) * rowStride, source = table + k * outPlane
                    for p in 0..<outPlane { destination[p] = scratch[Int(source[p])] }
                }
            }
        }
    }
}
