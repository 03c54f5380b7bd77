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

    /// `w` reordered once into the layout every share's primitive chose for it (nil where they
    /// take it plain, or choose differently: then each reorders its own).
    private func sharedWeights(
        _ w: UnsafePointer<Float>, _ primitives: [OneDNNPrimitive]
    ) -> Tensor? {
        let argument = OneDNNConvolution.weightsArgument
        guard primitives.allSatisfy({ $0.choosesLike(primitives[0], argument: argument) }) else { return nil }
        return primitives[0].chosenCopy(ofInput: argument, w)
    }

    /// Forward on oneDNN; false when it does not run this shape (the caller takes another kernel).
    func forwardOnOneDNN(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>
    ) -> Bool {
        let shares = self.shares
        let found = shares.map { oneDNN(images: $0.count) }
        guard found.allSatisfy({ $0 != nil }) else { return false }
        let convolutions = found.map { $0! }
        let weights = sharedWeights(w, convolutions.map(\.forward))
        parallelChunks(shares.count) { _, range in
            for share in range {
                let images = shares[share]
                convolutions[share].runForward(
                    x + images.lowerBound * inChannels * inPlane, weights.map { UnsafePointer($0.data) } ?? w,
                    y + images.lowerBound * outChannels * outPlane, weightsChosen: weights != nil)
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
    /// does not run this shape. The weights are reordered once for all shares, and the shares'
    /// weight gradients summed in the primitive's layout and reordered once.
    func backwardOnOneDNN(
        _ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ gy: UnsafePointer<Float>,
        _ gx: UnsafeMutablePointer<Float>?, _ gw: UnsafeMutablePointer<Float>?
    ) -> Bool {
        let shares = self.shares
        let found = shares.map { oneDNN(images: $0.count) }
        guard found.allSatisfy({ $0 != nil }) else { return false }
        let convolutions = found.map { $0! }
        // oneDNN 2.6 has no fast depthwise weight gradient (it unfolds: 2x the time of all the
        // rest of the convolution); sfkd's own loop computes it.
        let ownWeightGradient = isDepthwise
        if ownWeightGradient, let gw {
            if precision == .bfloat16 {
                let (xr, gyr) = (rounded(x, count: inputCount), rounded(gy, count: gyCount))
                withExtendedLifetime((xr, gyr)) { depthwiseBackward(xr.data, w, gyr.data, nil, gw) }
            } else {
                depthwiseBackward(x, w, gy, nil, gw)
            }
        }
        let weights = gx == nil ? nil : sharedWeights(w, convolutions.map(\.backwardData))
        let gradient = OneDNNConvolution.weightGradientArgument
        let backwardWeights = gw == nil || ownWeightGradient ? [] : convolutions.map(\.backwardWeights)
        let gradientChosen = backwardWeights.allSatisfy { $0.choosesLike(backwardWeights[0], argument: gradient) }
        let partialCount = backwardWeights.first.map { gradientChosen ? $0.chosenCount(gradient) : weightCount } ?? 0
        let partials = backwardWeights.isEmpty ? nil : Tensor(uninitializedShape: [shares.count, partialCount])
        parallelChunks(shares.count) { _, range in
            for share in range {
                let images = shares[share], convolution = convolutions[share]
                let xs = x + images.lowerBound * inChannels * inPlane
                let gys = gy + images.lowerBound * outChannels * outPlane
                if let gx {
                    convolution.runBackwardData(
                        gys, weights.map { UnsafePointer($0.data) } ?? w, gx + images.lowerBound * inChannels * inPlane,
                        weightsChosen: weights != nil)
                }
                if let partials {
                    convolution.runBackwardWeights(
                        xs, gys, partials.data + share * partialCount, gradientChosen: gradientChosen)
                }
            }
        }
        guard let gw, let partials else { return true }
        // Summed in share order, so results do not depend on timing.
        for share in shares.indices.dropFirst() {
            add(partials.data, partials.data + share * partialCount, into: partials.data, count: partialCount)
        }
        if gradientChosen {
            let plain = Tensor(uninitializedShape: [weightCount])
            backwardWeights[0].copyToPlain(output: gradient, partials.data, into: plain.data)
            add(gw, plain.data, into: gw, count: weightCount)
        } else {
            add(gw, partials.data, into: gw, count: weightCount)
        }
        return true
    }
}
