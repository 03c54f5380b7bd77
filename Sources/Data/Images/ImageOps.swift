import Foundation

/// PIL's pixel operations as timm's colour jitter and RandAugment call them (`ImageEnhance`,
/// `ImageOps`, `Image.transform`, `Image.rotate`, `ImageFilter`), reproduced to the bit given
/// their parameters: the same float or double arithmetic, the same truncations, the same edges.
/// One grey channel behaves as PIL's mode "L".
extension PixelImage {
    public func flippedHorizontally() -> PixelImage {
        var out = pixels
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels {
                    out[(y * width + x) * channels + c] = pixels[(y * width + width - 1 - x) * channels + c]
                }
            }
        }
        return PixelImage(width: width, height: height, channels: channels, pixels: out)
    }

    // MARK: Enhancements (blends with a degenerate image)

    /// PIL's `Image.blend(degenerate, self, factor)`: degenerate + factor (self - degenerate) in
    /// single precision, clipped to 0...255 and truncated, as Pillow's `ImagingBlend`.
    private func blended(with degenerate: [UInt8], factor: Float) -> PixelImage {
        var out = pixels
        for i in 0..<pixels.count {
            let base = Float(degenerate[i])
            let value = base + factor * (Float(pixels[i]) - base)
            out[i] = value <= 0 ? 0 : (value >= 255 ? 255 : UInt8(value))
        }
        return PixelImage(width: width, height: height, channels: channels, pixels: out)
    }

    /// PIL's RGB to L: (R 19595 + G 38470 + B 7471 + 2^15) >> 16 (ITU-R 601-2).
    public func luminance(at pixel: Int) -> UInt8 {
        guard channels == 3 else { return pixels[pixel] }
        let r = Int(pixels[3 * pixel]), g = Int(pixels[3 * pixel + 1]), b = Int(pixels[3 * pixel + 2])
        return UInt8((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16)
    }

    /// `ImageEnhance.Brightness(image).enhance(factor)`: a blend with black.
    public func adjustingBrightness(_ factor: Float) -> PixelImage {
        blended(with: [UInt8](repeating: 0, count: pixels.count), factor: factor)
    }

    /// `ImageEnhance.Contrast(image).enhance(factor)`: a blend with the mean grey level.
    public func adjustingContrast(_ factor: Float) -> PixelImage {
        var total = 0
        for p in 0..<(width * height) { total += Int(luminance(at: p)) }
        let mean = UInt8(Int(Double(total) / Double(width * height) + 0.5))
        return blended(with: [UInt8](repeating: mean, count: pixels.count), factor: factor)
    }

    /// `ImageEnhance.Color(image).enhance(factor)`: a blend with the image's own grey levels
    /// (nothing changes in a grey image).
    public func adjustingSaturation(_ factor: Float) -> PixelImage {
        guard channels == 3 else { return self }
        var grey = [UInt8](repeating: 0, count: pixels.count)
        for p in 0..<(width * height) {
            let l = luminance(at: p)
            grey[3 * p] = l
            grey[3 * p + 1] = l
            grey[3 * p + 2] = l
        }
        return blended(with: grey, factor: factor)
    }

    /// `ImageEnhance.Sharpness(image).enhance(factor)`: a blend with `smoothed()`.
    public func adjustingSharpness(_ factor: Float) -> PixelImage { blended(with: smoothed().pixels, factor: factor) }

    /// `image.filter(ImageFilter.SMOOTH)`: the 3x3 kernel (1 1 1, 1 5 1, 1 1 1) / 13 in single
    /// precision, summed row by row from +0.5 and truncated (Pillow's `ImagingFilter3x3`); the
    /// border rows and columns are copied; an image under 3x3 is returned as it is.
    public func smoothed() -> PixelImage {
        guard width >= 3 && height >= 3 else { return self }
        let edge = Float(1) / 13, centre = Float(5) / 13
        var out = pixels
        for y in 1..<(height - 1) {
            for x in 1..<(width - 1) {
                for c in 0..<channels {
                    func row(_ yy: Int, _ middle: Float) -> Float {
                        let base = (yy * width + x) * channels + c
                        return Float(pixels[base - channels]) * edge + Float(pixels[base]) * middle + Float(
                            pixels[base + channels]) * edge
                    }
                    var sum: Float = 0.5
                    sum += row(y + 1, edge)
                    sum += row(y, centre)
                    sum += row(y - 1, edge)
                    out[(y * width + x) * channels + c] = sum <= 0 ? 0 : (sum >= 255 ? 255 : UInt8(sum))
                }
            }
        }
        return PixelImage(width: width, height: height, channels: channels, pixels: out)
    }

    // MARK: Lookup tables (ImageOps)

    /// The image with every channel's values mapped through `tables[channel]`.
    func mapped(through tables: [[UInt8]]) -> PixelImage {
        var out = pixels
        for i in 0..<pixels.count { out[i] = tables[i % channels][Int(pixels[i])] }
        return PixelImage(width: width, height: height, channels: channels, pixels: out)
    }

    func mapped(through table: [UInt8]) -> PixelImage { mapped(through: [[UInt8]](repeating: table, count: channels)) }

    /// Each channel's 256-bin histogram.
    func histograms() -> [[Int]] {
        var counts = [[Int]](repeating: [Int](repeating: 0, count: 256), count: channels)
        for i in 0..<pixels.count { counts[i % channels][Int(pixels[i])] += 1 }
        return counts
    }

    /// `ImageOps.invert`.
    public func inverted() -> PixelImage { mapped(through: (0..<256).map { UInt8(255 - $0) }) }

    /// `ImageOps.posterize(image, bits)`: keep the `bits` high bits (0 makes the image black).
    public func posterized(bits: Int) -> PixelImage {
        guard bits < 8 else { return self }
        let mask = ~((1 << (8 - max(bits, 0))) - 1)
        return mapped(through: (0..<256).map { UInt8($0 & mask & 255) })
    }

    /// `ImageOps.solarize(image, threshold)`: values at or above `threshold` inverted.
    public func solarized(threshold: Int) -> PixelImage {
        mapped(through: (0..<256).map { UInt8($0 < threshold ? $0 : 255 - $0) })
    }

    /// timm's `solarize_add`: `add` added (clipped at 255) to the values below `threshold`.
    public func solarizedAdding(_ add: Int, threshold: Int = 128) -> PixelImage {
        mapped(through: (0..<256).map { UInt8($0 < threshold ? min(255, $0 + add) : $0) })
    }

    /// `ImageOps.autocontrast(image)`: each channel's darkest value to 0 and brightest to 255,
    /// truncated in double precision; a channel with one value is left alone.
    public func autocontrasted() -> PixelImage {
        mapped(
            through: histograms().map { histogram in
                guard let low = histogram.firstIndex(where: { $0 > 0 }),
                    let high = histogram.lastIndex(where: { $0 > 0 }), high > low
                else {
                    return (0..<256).map { UInt8($0) }
                }
                let scale = 255.0 / Double(high - low), offset = -Double(low) * scale
                return (0..<256).map { UInt8(min(255, max(0, Int(Double($0) * scale + offset)))) }
            })
    }

    /// `ImageOps.equalize(image)`: each channel's cumulative histogram in steps of
    /// (pixels - count of the last occupied bin) / 255, as PIL counts them.
    public func equalized() -> PixelImage {
        mapped(
            through: histograms().map { histogram in
                let occupied = histogram.filter { $0 > 0 }
                let step = occupied.count <= 1 ? 0 : (occupied.reduce(0, +) - occupied[occupied.count - 1]) / 255
                guard step > 0 else { return (0..<256).map { UInt8($0) } }
                var n = step / 2
                return (0..<256).map { i in
                    defer { n += histogram[i] }
                    return UInt8(min(255, n / step))
                }
            })
    }

    // MARK: Geometry (Image.transform, Image.rotate)

    /// `image.transform(size, Image.AFFINE, (a, b, c, d, e, f), resample, fillcolor=fill)`: output
    /// pixel (x, y) samples the input at (a x' + b y' + c, d x' + e y' + f) with x' = x + 0.5,
    /// y' = y + 0.5 (Pillow's generic transform); samples outside the image take `fill`.
    public func affineTransformed(_ m: [Double], interpolation: Interpolation, fill: [UInt8]) -> PixelImage {
        precondition(m.count == 6 && fill.count >= channels)
        var out = [UInt8](repeating: 0, count: pixels.count)
        var sample = [UInt8](repeating: 0, count: channels)
        for y in 0..<height {
            for x in 0..<width {
                let xin = m[0] * (Double(x) + 0.5) + m[1] * (Double(y) + 0.5) + m[2]
                let yin = m[3] * (Double(x) + 0.5) + m[4] * (Double(y) + 0.5) + m[5]
                let inside =
                    interpolation == .bilinear
                    ? bilinearSample(xin, yin, into: &sample) : bicubicSample(xin, yin, into: &sample)
                for c in 0..<channels { out[(y * width + x) * channels + c] = inside ? sample[c] : fill[c] }
            }
        }
        return PixelImage(width: width, height: height, channels: channels, pixels: out)
    }

    private func clampedX(_ x: Int) -> Int { x < 0 ? 0 : (x < width ? x : width - 1) }
    private func clampedY(_ y: Int) -> Int { y < 0 ? 0 : (y < height ? y : height - 1) }

    /// Pillow's `bilinear_filter32RGB`: neighbours clamped to the image along x; a row below the
    /// image repeats the row above; the result truncated.
    private func bilinearSample(_ xIn: Double, _ yIn: Double, into sample: inout [UInt8]) -> Bool {
        guard xIn >= 0, xIn < Double(width), yIn >= 0, yIn < Double(height) else { return false }
        let xs = xIn - 0.5, ys = yIn - 0.5
        let x = Int(floor(xs)), y = Int(floor(ys))
        let dx = xs - Double(x), dy = ys - Double(y)
        let x0 = clampedX(x), x1 = clampedX(x + 1)
        for c in 0..<channels {
            func at(_ row: Int, _ column: Int) -> Double { Double(pixels[(row * width + column) * channels + c]) }
            let top = clampedY(y)
            var v1 = at(top, x0) + (at(top, x1) - at(top, x0)) * dx
            let v2 = y + 1 < height ? at(y + 1, x0) + (at(y + 1, x1) - at(y + 1, x0)) * dx : v1
            v1 = v1 + (v2 - v1) * dy
            sample[c] = UInt8(v1)
        }
        return true
    }

    /// Pillow's `bicubic_filter32RGB`: PIL's cubic (a = -0.5) over 4x4 neighbours, clamped along
    /// x, rows past the image repeat the last one read; clipped to 0...255 and truncated.
    private func bicubicSample(_ xIn: Double, _ yIn: Double, into sample: inout [UInt8]) -> Bool {
        guard xIn >= 0, xIn < Double(width), yIn >= 0, yIn < Double(height) else { return false }
        let xs = xIn - 0.5, ys = yIn - 0.5
        let x = Int(floor(xs)) - 1, y = Int(floor(ys)) - 1
        let dx = xs - floor(xs), dy = ys - floor(ys)
        let columns = (0..<4).map { clampedX(x + $0) }
        func cubic(_ v1: Double, _ v2: Double, _ v3: Double, _ v4: Double, _ d: Double) -> Double {
            let p1 = v2, p2 = -v1 + v3, p3 = 2 * (v1 - v2) + v3 - v4, p4 = -v1 + v2 - v3 + v4
            return p1 + d * (p2 + d * (p3 + d * p4))
        }
        for c in 0..<channels {
            func row(_ r: Int) -> Double {
                let base = r * width
                return cubic(
                    Double(pixels[(base + columns[0]) * channels + c]),
                    Double(pixels[(base + columns[1]) * channels + c]),
                    Double(pixels[(base + columns[2]) * channels + c]),
                    Double(pixels[(base + columns[3]) * channels + c]), dx)
            }
            let v1 = row(clampedY(y))
            let v2 = y + 1 >= 0 && y + 1 < height ? row(y + 1) : v1
            let v3 = y + 2 >= 0 && y + 2 < height ? row(y + 2) : v2
            let v4 = y + 3 >= 0 && y + 3 < height ? row(y + 3) : v3
            let v = cubic(v1, v2, v3, v4, dy)
            sample[c] = v <= 0 ? 0 : (v >= 255 ? 255 : UInt8(v))
        }
        return true
    }

    /// `image.rotate(degrees, resample, fillcolor=fill)`: counter-clockwise about the centre, the
    /// same size; PIL's matrix (cosines rounded to 15 decimals), and its exact transposes for 0,
    /// 180 and (square images) 90 and 270 degrees.
    public func rotated(degrees: Double, interpolation: Interpolation, fill: [UInt8]) -> PixelImage {
        var angle = fmod(degrees, 360)  // Python's %: in [0, 360)
        if angle < 0 { angle += 360 }
        if angle == 0 { return self }
        if angle == 180 { return transposed { (width - 1 - $0, height - 1 - $1) } }
        if width == height && (angle == 90 || angle == 270) {
            return angle == 90 ? transposed { (width - 1 - $1, $0) } : transposed { ($1, height - 1 - $0) }
        }
        let radians = -(angle * (Double.pi / 180))  // -math.radians(angle)
        // Python's round(v, 15): the correctly rounded 15-decimal value, as printf gives it.
        func round15(_ v: Double) -> Double { Double(String(format: "%.15f", v)) ?? v }
        var m = [round15(cos(radians)), round15(sin(radians)), 0, round15(-sin(radians)), round15(cos(radians)), 0]
        let cx = Double(width) / 2, cy = Double(height) / 2
        m[2] = m[0] * -cx + m[1] * -cy + m[2] + cx
        m[5] = m[3] * -cx + m[4] * -cy + m[5] + cy
        return affineTransformed(m, interpolation: interpolation, fill: fill)
    }

    /// The image whose pixel (x, y) is this image's pixel `source(x, y)` (same size).
    private func transposed(_ source: (Int, Int) -> (Int, Int)) -> PixelImage {
        var out = pixels
        for y in 0..<height {
            for x in 0..<width {
                let (sx, sy) = source(x, y)
                for c in 0..<channels { out[(y * width + x) * channels + c] = pixels[(sy * width + sx) * channels + c] }
            }
        }
        return PixelImage(width: width, height: height, channels: channels, pixels: out)
    }

    // MARK: Blur (ImageFilter.GaussianBlur)

    /// `image.filter(ImageFilter.GaussianBlur(radius))`: three passes of Pillow's extended box
    /// blur along x, then three along y, with its box radius from the standard deviation
    /// (Gwosdek et al. 2011) and its 24-bit fixed-point weights.
    public func gaussianBlurred(radius: Double) -> PixelImage {
        guard radius != 0 else { return self }
        let passes = 3
        let sigma2 = Float(radius) * Float(radius) / Float(passes)
        let length = Float((12.0 * Double(sigma2) + 1.0).squareRoot())
        let l = Float(floor((Double(length) - 1.0) / 2.0))
        var a = (2 * l + 1) * (l * (l + 1) - 3 * sigma2)
        a /= 6 * (sigma2 - (l + 1) * (l + 1))
        let boxRadius = l + a
        var out = self
        for _ in 0..<passes { out = out.boxBlurredHorizontally(radius: boxRadius) }
        var turned = out.swappingAxes()
        for _ in 0..<passes { turned = turned.boxBlurredHorizontally(radius: boxRadius) }
        return turned.swappingAxes()
    }

    private func swappingAxes() -> PixelImage {
        var out = pixels
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<channels { out[(x * height + y) * channels + c] = pixels[(y * width + x) * channels + c] }
            }
        }
        return PixelImage(width: height, height: width, channels: channels, pixels: out)
    }

    /// Pillow's `ImagingHorizontalBoxBlur`: a box of 2r+1 pixels (integer part of r) plus the
    /// two next pixels weighted by the fractional part, edges extended.
    private func boxBlurredHorizontally(radius floatRadius: Float) -> PixelImage {
        guard floatRadius > 0 else { return self }
        let radius = Int(floatRadius)
        let ww = UInt32(Float(1 << 24) / (floatRadius * 2 + 1))
        let fw = (UInt32(1 << 24) &- UInt32(radius * 2 + 1) &* ww) / 2
        let last = width - 1
        var out = pixels
        for y in 0..<height {
            for c in 0..<channels {
                func at(_ x: Int) -> UInt32 { UInt32(pixels[(y * width + x) * channels + c]) }
                // The sum over the window centred one pixel before the line, edges extended.
                var acc = at(0) &* UInt32(radius + 1)
                let edgeA = min(radius + 1, width), edgeB = max(width - radius - 1, 0)
                for x in 0..<max(edgeA - 1, 0) { acc &+= at(x) }
                acc &+= at(last) &* UInt32(radius - edgeA + 1)
                for x in 0...last {
                    // Indices leaving and entering the window, and the two fractional neighbours.
                    let leaving = min(max(x - radius - 1, 0), last), entering = min(x + radius, last)
                    let farRight = min(x + radius + 1, last)
                    acc = acc &+ at(entering) &- at(leaving)
                    let bulk = acc &* ww &+ (at(leaving) &+ at(farRight)) &* fw
                    out[(y * width + x) * channels + c] = UInt8(truncatingIfNeeded: (bulk &+ (1 << 23)) >> 24)
                }
            }
        }
        return PixelImage(width: width, height: height, channels: channels, pixels: out)
    }
}
