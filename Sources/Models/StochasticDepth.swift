/// timm's stochastic-depth schedule: `torch.linspace(0, rate, count)[block]`, rising linearly
/// from 0 at the first block to `rate` at the last.
func linearDropPathRate(_ rate: Float, block: Int, of count: Int) -> Float {
    count > 1 ? rate * Float(block) / Float(count - 1) : 0
}
