/// Broadcasting layout: the output shape plus, for each operand, its strides over that shape
/// (0 along broadcast dimensions), with runs of dimensions merged wherever every operand
/// is contiguous across them. Kernels then loop over an outer index and a tight inner run.
struct BroadcastLayout {
    var shape: [Int]  // merged output dimensions
    var strides: [[Int]]  // per operand, per merged dimension

    static func outputShape(_ a: [Int], _ b: [Int], op: String) -> [Int] {
        let rank = max(a.count, b.count)
        var result = [Int](repeating: 1, count: rank)
        for i in 0..<rank {
            let da = i < rank - a.count ? 1 : a[i - (rank - a.count)]
            let db = i < rank - b.count ? 1 : b[i - (rank - b.count)]
            ensure(da == db || da == 1 || db == 1, "\(op): shapes \(a) and \(b) do not broadcast")
            result[i] = da == 1 ? db : da
        }
        return result
    }

    init(output: [Int], operands: [[Int]]) {
        let rank = output.count
        var perOperand: [[Int]] = operands.map { shape in
            var strides = [Int](repeating: 0, count: rank)
            var running = 1
            for i in stride(from: rank - 1, through: 0, by: -1) {
                let j = i - (rank - shape.count)
                if j >= 0 && shape[j] != 1 {
                    strides[i] = running
                    running *= shape[j]
                }
            }
            return strides
        }
        // Merge dimension i into i+1 when, for every operand, stride[i] == stride[i+1] * dim[i+1].
        var mergedShape: [Int] = []
        var mergedStrides: [[Int]] = Array(repeating: [], count: operands.count)
        for i in 0..<rank where output[i] != 1 {
            if let last = mergedShape.last {
                let canMerge = perOperand.indices.allSatisfy { k in
                    mergedStrides[k].last! == perOperand[k][i] * output[i]
                }
                if canMerge {
                    mergedShape[mergedShape.count - 1] = last * output[i]
                    for k in perOperand.indices { mergedStrides[k][mergedStrides[k].count - 1] = perOperand[k][i] }
                    continue
                }
            }
            mergedShape.append(output[i])
            for k in perOperand.indices { mergedStrides[k].append(perOperand[k][i]) }
        }
        if mergedShape.isEmpty {
            mergedShape = [1]
            mergedStrides = Array(repeating: [0], count: operands.count)
        }
        perOperand = mergedStrides
        shape = mergedShape
        strides = perOperand
    }

    var innerCount: Int { shape.last! }
    var outerCount: Int { shape.dropLast().reduce(1, *) }

    /// Offsets of each operand at the start of outer row `row`.
    @inline(__always)
    func offsets(row: Int, operand: Int) -> Int {
        var remaining = row
        var offset = 0
        let s = strides[operand]
        var d = shape.count - 2
        while d >= 0 {
            let extent = shape[d]
            offset += (remaining % extent) * s[d]
            remaining /= extent
            d -= 1
        }
        return offset
    }
}
