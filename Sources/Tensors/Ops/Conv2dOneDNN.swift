/// The oneDNN path of `conv2d`: the batch split across sfkd's threads, one single-threaded
/// primitive call per share of images; weight gradients summed per share, then in share order.
extension ConvPlan {
    /// oneDNN's convolution for `images` images of this plan's shape (nil where oneDNN cannot
    /// run the shape at all).
    func oneDNN(images: Int) -> OneDNNConvolution? {
        let g = geometry
        return OneDNNConvolution.forShape(
            .init(
                batch: images, inChannels: inChannels, outChannels: outChannels, groups: groups,
                inputHeight: g.inputHeight, inputWidth: g.inputWidth, kernelHeight: g.kernelHeight,
                kernelWidth: g.kernelWidth, strideHeight: g.strideHeight, strideWidth: g.strideWidth,
                paddingHeight: g.paddingHeight, paddingWidth: g.paddingWidth, precision: precision))
    }

    var usesOneDNN: Bool {
        switch ConvolutionKernel.choice {
        case .oneDNN: return true
        case .unfold, .direct, .channelLanes: return false
        case .automatic: return ConvolutionKernel.automaticPicksOneDNN(self)
        }
    }

    /// Shares of the batch, one per thread (the whole batch on one thread).
    private var shares: [Range<Int>] {
        let (chunks, perChunk) = parallelChunking(batch)
        return (0..<chunks).map { $0 * perChunk..<min(batch, ($0 + 1) * perChunk) }
    }

    /// Forward on oneDNN; false when it does not run this shape (the caller takes another kernel).
    func forwardOnOneDNN(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>
    ) -> Bool {
        let shares = self.shares
        let convolutions = shares.map { oneDNN(images: $0.count) }
        guard convolutions.allSatisfy({ $0 != nil }) else { return false }
        parallelChunks(shares.count) { _, range in
            for share in range {
                let images = shares[share]
                convolutions[share]!.runForward(
                    x + images.lowerBound * inChannels * inPlane, w, y + images.lowerBound * outChannels * outPlane
                )
            }
        }
        if let b {
            parallelFor(batch * outChannels, grain: 16) { planes in
                for plane in planes {
                    let shift = b[plane % outChannels], target = y + plane * outPlane
                    for k in 0..<outPlane { target[k] += shift }
                }
            }
        }
        return true
    }

    /// Backward on oneDNN: overwrites gx, adds into gw (either may be nil). False when oneDNN
    /// does not run this shape.
    func backwardOnOneDNN(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gy: UnsafePointer<Float>,
        _ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?
    ) -> Bool {
        let shares = self.shares
        let convolutions = shares.map { oneDNN(images: $0.count) }
        guard convolutions.allSatisfy({ $0 != nil }) else { return false }
        // oneDNN 2.6 has no fast depthwise weight gradient (it unfolds: 2x the time of all the
        // rest of the convolution); sfkd's own loop computes it.
        let ownWeightGradient = isDepthwise
        if ownWeightGradient, let gw {
            if precision == .bfloat16 {
                let (xr, gyr) = (rounded(x, count: batch * inChannels * inPlane), rounded(gy, count: gyCount))
                depthwiseBackward(xr.data, w, gyr.data, nil, gw)
            } else {
                depthwiseBackward(x, w, gy, nil, gw)
            }
        }
        let weightCount = outChannels * columnsRows
        let partials = gw == nil || ownWeightGradient ? nil : Tensor(uninitializedShape: [shares.count, weightCount])
        parallelChunks(shares.count) { _, range in
            for share in range {
                let images = shares[share], convolution = convolutions[share]!
                let xs = x + images.lowerBound * inChannels * inPlane
                let gys = gy + images.lowerBound * outChannels * outPlane
                if let gx { convolution.runBackwardData(gys, w, gx + images.lowerBound * inChannels * inPlane) }
                if let partials { convolution.runBackwardWeights(xs, gys, partials.data + share * weightCount) }
            }
        }
        if let gw, let partials {
            for share in shares.indices { add(gw, partials.data + share * weightCount, into: gw, count: weightCount) }
        }
        return true
    }
}
