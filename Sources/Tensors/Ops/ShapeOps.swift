/// Reshape (a view), permute, slice, concat, split and pad.

extension Tensor {
    /// A view with a new shape; one dimension may be -1.
    public func reshape(_ newShape: [Int]) -> Tensor {
        var resolved = newShape
        if let unknown = newShape.firstIndex(of: -1) {
            let known = newShape.enumerated().filter { $0.offset != unknown }.reduce(1) { $0 * $1.element }
            ensure(known > 0 && count % known == 0, "reshape: cannot reshape \(shape) to \(newShape)")
            resolved[unknown] = count / known
        }
        ensure(resolved.reduce(1, *) == count, "reshape: cannot reshape \(shape) (\(count) elements) to \(newShape)")
        let out = Tensor(shape: resolved, storage: storage, offset: offset)
        let source = node
        Tape.current.record(out, inputs: [self], family: .copies) { g in
            accumulateGradient(source, Tensor(shape: source.shape, storage: g.storage, offset: g.offset))
        }
        return out
    }

    public func flatten(from axis: Int = 1) -> Tensor {
        let a = normalizedAxis(axis, op: "flatten")
        return reshape(Array(shape[..<a]) + [shape[a...].reduce(1, *)])
    }

    /// Reorders dimensions: result dimension i is input dimension `order[i]`.
    public func permute(_ order: [Int]) -> Tensor {
        ensure(order.count == rank && Set(order) == Set(0..<rank), "permute: order \(order) invalid for shape \(shape)")
        if order == Array(0..<rank) { return self }
        let out = Tensor(uninitializedShape: order.map { shape[$0] })
        permuteCopy(data, shape: shape, order: order, into: out.data)
        let source = node
        Tape.current.record(out, inputs: [self], family: .copies) { g in
            var inverse = [Int](repeating: 0, count: order.count)
            for (i, o) in order.enumerated() { inverse[o] = i }
            let gx = Tensor(uninitializedShape: source.shape)
            permuteCopy(g.data, shape: g.shape, order: inverse, into: gx.data)
            accumulateGradient(source, gx)
        }
        return out
    }

    public func transposed(_ a: Int, _ b: Int) -> Tensor {
        var order = Array(0..<rank)
        order.swapAt(normalizedAxis(a, op: "transpose"), normalizedAxis(b, op: "transpose"))
        return permute(order)
    }

    /// Elements `range` along `axis` (a copy).
    public func slice(axis: Int, _ range: Range<Int>) -> Tensor {
        let a = normalizedAxis(axis, op: "slice")
        ensure(
            range.lowerBound >= 0 && range.upperBound <= shape[a],
            "slice: range \(range) out of bounds for axis \(a) of shape \(shape)")
        var outShape = shape
        outShape[a] = range.count
        let outer = shape[..<a].reduce(1, *)
        let inner = shape[(a + 1)...].reduce(1, *)
        let out = Tensor(uninitializedShape: outShape)
        let src = data, dst = out.data
        let rowIn = shape[a] * inner, rowOut = range.count * inner
        for o in 0..<outer {
            (dst + o * rowOut).update(from: src + o * rowIn + range.lowerBound * inner, count: rowOut)
        }
        let source = node
        Tape.current.record(out, inputs: [self], family: .copies) { g in
            let gx = Tensor(zeros: source.shape)
            for o in 0..<outer {
                (gx.data + o * rowIn + range.lowerBound * inner).update(from: g.data + o * rowOut, count: rowOut)
            }
            accumulateGradient(source, gx)
        }
        return out
    }

    /// Splits along `axis` into pieces of the given sizes.
    public func split(_ sizes: [Int], axis: Int) -> [Tensor] {
        let a = normalizedAxis(axis, op: "split")
        ensure(
            sizes.reduce(0, +) == shape[a], "split: sizes \(sizes) do not add up to \(shape[a]) (axis \(a) of \(shape))"
        )
        var start = 0
        return sizes.map { size in
            defer { start += size }
            return slice(axis: a, start..<(start + size))
        }
    }

    /// Zero padding: `padding[i]` = (before, after) for dimension i; missing leading entries are (0, 0).
    public func padded(_ padding: [(Int, Int)]) -> Tensor {
        ensure(padding.count <= rank, "pad: \(padding.count) paddings for shape \(shape)")
        let full = [(Int, Int)](repeating: (0, 0), count: rank - padding.count) + padding
        ensure(full.allSatisfy { $0.0 >= 0 && $0.1 >= 0 }, "pad: negative padding \(padding)")
        let outShape = zip(shape, full).map { $0 + $1.0 + $1.1 }
        let out = Tensor(zeros: outShape)
        copyBlock(
            from: data, shape: shape, into: out.data, outShape: outShape, offsets: full.map { $0.0 }, reverse: false)
        let source = node
        Tape.current.record(out, inputs: [self], family: .copies) { g in
            let gx = Tensor(uninitializedShape: source.shape)
            copyBlock(
                from: gx.data, shape: source.shape, into: g.data, outShape: outShape, offsets: full.map { $0.0 },
                reverse: true)
            accumulateGradient(source, gx)
        }
        return out
    }
}

/// Concatenates along `axis`; all other dimensions must match.
public func concat(_ tensors: [Tensor], axis: Int) -> Tensor {
    ensure(!tensors.isEmpty, "concat: no tensors")
    let first = tensors[0]
    let a = first.normalizedAxis(axis, op: "concat")
    for t in tensors {
        ensure(
            t.rank == first.rank
                && t.shape.enumerated().allSatisfy { $0.offset == a || $0.element == first.shape[$0.offset] },
            "concat: shape \(t.shape) does not match \(first.shape) outside axis \(a)")
    }
    var outShape = first.shape
    outShape[a] = tensors.reduce(0) { $0 + $1.shape[a] }
    let outer = first.shape[..<a].reduce(1, *)
    let inner = first.shape[(a + 1)...].reduce(1, *)
    let out = Tensor(uninitializedShape: outShape)
    let rowOut = outShape[a] * inner
    var start = 0
    var starts: [Int] = []
    for t in tensors {
        starts.append(start)
        let rowIn = t.shape[a] * inner
        for o in 0..<outer { (out.data + o * rowOut + start).update(from: t.data + o * rowIn, count: rowIn) }
        start += rowIn
    }
    let nodes = tensors.map(\.node)
    Tape.current.record(out, inputs: tensors, family: .copies) { g in
        for (t, s) in zip(nodes, starts) where t.requiresGrad {
            let rowIn = t.shape[a] * inner
            let gt = Tensor(uninitializedShape: t.shape)
            for o in 0..<outer { (gt.data + o * rowIn).update(from: g.data + o * rowOut + s, count: rowIn) }
            accumulateGradient(t, gt)
        }
    }
    return out
}

/// General N-d permutation copy with a tight innermost loop.
func permuteCopy(_ input: UnsafePointer<Float>, shape: [Int], order: [Int], into output: UnsafeMutablePointer<Float>) {
    let rank = shape.count
    var inputStrides = [Int](repeating: 1, count: rank)
    for i in stride(from: rank - 2, through: 0, by: -1) { inputStrides[i] = inputStrides[i + 1] * shape[i + 1] }
    let outShape = order.map { shape[$0] }
    let strides = order.map { inputStrides[$0] }  // input stride per output dimension
    let total = outShape.reduce(1, *)
    if total == 0 { return }
    let inner = outShape[rank - 1], innerStride = strides[rank - 1]
    let outer = total / inner
    parallelFor(outer, grain: max(1, 16384 / inner)) { rows in
        var index = [Int](repeating: 0, count: rank)
        var remaining = rows.lowerBound
        for d in stride(from: rank - 2, through: 0, by: -1) {
            index[d] = remaining % outShape[d]
            remaining /= outShape[d]
        }
        for row in rows {
            var base = 0
            for d in 0..<(rank - 1) { base += index[d] * strides[d] }
            let dst = output + row * inner
            let src = input + base
            if innerStride == 1 {
                dst.update(from: src, count: inner)
            } else {
                for i in 0..<inner { dst[i] = src[i * innerStride] }
            }
            var d = rank - 2
            while d >= 0 {
                index[d] += 1
                if index[d] < outShape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
    }
}

/// Copies a block of shape `shape` into (or, reversed, out of) a larger array at `offsets`.
func copyBlock(
    from small: UnsafePointer<Float>, shape: [Int], into large: UnsafeMutablePointer<Float>, outShape: [Int],
    offsets: [Int], reverse: Bool
) {
    let rank = shape.count
    if shape.contains(0) { return }
    if rank == 0 {
        if reverse { UnsafeMutablePointer(mutating: small)[0] = large[0] } else { large[0] = small[0] }
        return
    }
    var largeStrides = [Int](repeating: 1, count: rank)
    for i in stride(from: rank - 2, through: 0, by: -1) { largeStrides[i] = largeStrides[i + 1] * outShape[i + 1] }
    let inner = shape[rank - 1]
    let outer = shape.reduce(1, *) / inner
    var index = [Int](repeating: 0, count: rank)
    let mutableSmall = UnsafeMutablePointer(mutating: small)
    for row in 0..<outer {
        var base = offsets[rank - 1]
        for d in 0..<(rank - 1) { base += (index[d] + offsets[d]) * largeStrides[d] }
        if reverse {
            (mutableSmall + row * inner).update(from: large + base, count: inner)
        } else {
            (large + base).update(from: small + row * inner, count: inner)
        }
        var d = rank - 2
        while d >= 0 {
            index[d] += 1
            if index[d] < shape[d] { break }
            index[d] = 0
            d -= 1
        }
    }
}

extension Tensor {
    /// `torch.roll` along one axis: element i moves to (i + shift) mod n.
    public func rolled(by shift: Int, axis: Int) -> Tensor {
        let a = normalizedAxis(axis, op: "roll")
        let n = shape[a]
        let s = ((shift % n) + n) % n
        if s == 0 { return self }
        return concat([slice(axis: a, (n - s)..<n), slice(axis: a, 0..<(n - s))], axis: a)
    }

    /// Rows `indices` of a table (first axis), as `table[indices]` in PyTorch; the backward adds
    /// each row's gradient back into the table row it came from.
    public func gatherRows(_ indices: [Int]) -> Tensor {
        ensure(
            rank >= 1 && indices.allSatisfy { (0..<shape[0]).contains($0) },
            "gatherRows: an index is outside 0..<\(shape.first ?? 0) of table \(shape)")
        let row = count / Swift.max(shape[0], 1)
        let out = Tensor(uninitializedShape: [indices.count] + shape.dropFirst())
        for (i, index) in indices.enumerated() { (out.data + i * row).update(from: data + index * row, count: row) }
        let source = node
        Tape.current.record(out, inputs: [self], family: .copies) { g in
            let gx = Tensor(zeros: source.shape)
            for (i, index) in indices.enumerated() { addInPlace(gx.data + index * row, g.data + i * row, count: row) }
            accumulateGradient(source, gx)
        }
        return out
    }
}
