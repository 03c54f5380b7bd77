#!/usr/bin/env python3
"""The sfkd registry models in PyTorch, timed like `sfkd bench step`: random 3xSxS input
(S = --input-size, 32 by default), --classes classes, forward + backward + SGD with momentum,
median images/s. The CIFAR models are built layer for layer here; timm's names (resnet18,
deit_tiny_patch16_224, convnext_tiny, ...) come from timm itself with `--model-args` as sfkd
takes them (`stem=cifar` swaps in the 3x3 stride-1 stem without max-pool, as sfkd does).
With --teacher NAME the step is a KD step as sfkd's `bench step --teacher-model NAME --method
kd`: the frozen teacher's forward (eval mode, no gradient), the student's forward, KL at
temperature 4 plus cross-entropy, backward and SGD. With --precision bf16 the forward passes
and the loss run under torch.autocast("cpu", dtype=torch.bfloat16), as timm's and OFAKD's
--amp do on a CPU. Prints one JSON object (parameter count included, to check that the models
match)."""
import contextlib
import argparse
import json
import resource
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("pytorch_step.py: torch is not installed (pip install torch)", file=sys.stderr)
    sys.exit(3)


class BasicBlock(nn.Module):
    def __init__(self, inp, out, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out)
        self.conv2 = nn.Conv2d(out, out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or inp != out:
            self.downsample = nn.Sequential(nn.Conv2d(inp, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        return F.relu(self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x))))) + residual)


class ResNet(nn.Module):
    def __init__(self, depth, widths, classes=10, channels=3):
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(channels, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        def stage(inp, out, stride):
            return nn.Sequential(*[BasicBlock(inp if i == 0 else out, out, stride if i == 0 else 1) for i in range(n)])
        self.layer1 = stage(widths[0], widths[1], 1)
        self.layer2 = stage(widths[1], widths[2], 2)
        self.layer3 = stage(widths[2], widths[3], 2)
        self.fc = nn.Linear(widths[3], classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


class InvertedResidual(nn.Module):
    def __init__(self, inp, out, expansion, stride):
        super().__init__()
        hidden = inp * expansion
        self.stride = stride
        self.conv1 = nn.Conv2d(inp, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = nn.Conv2d(hidden, out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.shortcut = None
        if stride == 1 and inp != out:
            self.shortcut = nn.Sequential(nn.Conv2d(inp, out, 1, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        out = self.bn3(self.conv3(F.relu6(self.bn2(self.conv2(F.relu6(self.bn1(self.conv1(x))))))))
        if self.stride != 1:
            return out
        return out + (x if self.shortcut is None else self.shortcut(x))


class MobileNetV2(nn.Module):
    config = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, classes=10, channels=3):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 32, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        blocks, inp = [], 32
        for expansion, out, count, stride in self.config:
            for i in range(count):
                blocks.append(InvertedResidual(inp, out, expansion, stride if i == 0 else 1))
                inp = out
        self.layers = nn.Sequential(*blocks)
        self.conv2 = nn.Conv2d(320, 1280, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(1280)
        self.linear = nn.Linear(1280, classes)

    def forward(self, x):
        x = self.layers(F.relu6(self.bn1(self.conv1(x))))
        x = F.relu6(self.bn2(self.conv2(x)))
        return self.linear(F.adaptive_avg_pool2d(x, 1).flatten(1))


class Attention(nn.Module):
    def __init__(self, width, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        return self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, inp, hidden):
        super().__init__()
        self.fc1 = nn.Linear(inp, hidden)
        self.fc2 = nn.Linear(hidden, inp)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, width, heads, mlp):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width, mlp)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, channels, width, patch):
        super().__init__()
        self.proj = nn.Conv2d(channels, width, patch, patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class ViT(nn.Module):
    def __init__(self, width, depth, heads, mlp, classes=10, channels=3, size=32, patch=4):
        super().__init__()
        self.patch_embed = PatchEmbed(channels, width, patch)
        tokens = (size // patch) ** 2 + 1
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens, width) * 0.02)
        self.blocks = nn.Sequential(*[Block(width, heads, mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


class MixerBlock(nn.Module):
    def __init__(self, tokens, width, token_mlp, channel_mlp):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.mlp_tokens = Mlp(tokens, token_mlp)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp_channels = Mlp(width, channel_mlp)

    def forward(self, x):
        x = x + self.mlp_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        return x + self.mlp_channels(self.norm2(x))


class Mixer(nn.Module):
    def __init__(self, width=128, depth=4, token_mlp=64, channel_mlp=256, classes=10, channels=3, size=32, patch=4):
        super().__init__()
        self.stem = PatchEmbed(channels, width, patch)
        tokens = (size // patch) ** 2
        self.blocks = nn.Sequential(*[MixerBlock(tokens, width, token_mlp, channel_mlp) for _ in range(depth)])
        self.norm = nn.LayerNorm(width, eps=1e-6)
        self.head = nn.Linear(width, classes)

    def forward(self, x):
        return self.head(self.norm(self.blocks(self.stem(x))).mean(1))


MODELS = {
    "resnet8": lambda: ResNet(8, [16, 16, 32, 64]),
    "resnet20": lambda: ResNet(20, [16, 16, 32, 64]),
    "resnet56": lambda: ResNet(56, [16, 16, 32, 64]),
    "resnet8x4": lambda: ResNet(8, [32, 64, 128, 256]),
    "resnet32x4": lambda: ResNet(32, [32, 64, 128, 256]),
    "mobilenetv2": MobileNetV2,
    "vit-tiny": lambda: ViT(128, 4, 4, 256),
    "vit-small": lambda: ViT(192, 8, 6, 384),
    "mixer-tiny": Mixer,
}


def timm_model(name, text, size=32, classes=10):
    """timm.create_model(name, **arguments) for sfkd's `key=value` model arguments."""
    import timm
    arguments, cifar_stem = {}, False
    for pair in text.split():
        key, value = pair.split("=", 1)
        if key == "stem":
            cifar_stem = value == "cifar"
            continue
        values = [float(v) if "." in v else int(v) for v in value.split(",")]
        arguments[key] = tuple(values) if len(values) > 1 or key in ("layers", "channels", "depths", "dims", "num_heads") and name.startswith(("resnet", "convnext", "swin")) else values[0]
    if name.startswith(("deit", "vit", "mixer", "resmlp", "swin")):
        arguments.setdefault("img_size", size)  # sfkd sizes token models from the input
    if name.startswith(("mixer", "resmlp")):
        from functools import partial
        from timm.models.mlp_mixer import MlpMixer, ResBlock, Affine
        defaults = dict(num_blocks=12, embed_dim=768) if name.startswith("mixer") else \
            dict(num_blocks=12, embed_dim=384, mlp_ratio=4, block_layer=partial(ResBlock, init_values=0.1), norm_layer=Affine)
        return MlpMixer(num_classes=classes, **dict(defaults, **arguments))
    model = timm.create_model(name, num_classes=classes, **arguments)
    if cifar_stem:
        model.conv1 = nn.Conv2d(3, model.conv1.out_channels, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", required=True)
    parser.add_argument("--model-args", default="")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--teacher", help="a timm teacher: time a KD step")
    parser.add_argument("--teacher-args", default="")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    def build(name, text):
        if name in MODELS and args.input_size == 32 and args.classes == 10:
            return MODELS[name]()
        return timm_model(name, text, args.input_size, args.classes)
    model = build(args.model, args.model_args)
    model.train()
    teacher = None
    if args.teacher:
        teacher = build(args.teacher, args.teacher_args).eval()
        for p in teacher.parameters():
            p.requires_grad_(False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    images = torch.randn(args.batch_size, 3, args.input_size, args.input_size)
    labels = torch.randint(0, args.classes, (args.batch_size,))

    def loss_of(logits):
        loss = F.cross_entropy(logits, labels)
        if teacher is None:
            return loss
        with torch.no_grad():
            target = teacher(images)
        temperature = 4.0
        kl = F.kl_div(F.log_softmax(logits / temperature, 1), F.softmax(target / temperature, 1), reduction="batchmean")
        return loss + kl * temperature ** 2

    def autocast():
        if args.precision == "bf16":
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    times = []
    for step in range(args.warmup + args.steps):
        start = time.perf_counter()
        with autocast():
            loss = loss_of(model(images))
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()
        if step >= args.warmup:
            times.append(time.perf_counter() - start)
    times.sort()
    median = times[len(times) // 2]
    print(json.dumps({
        "model": args.model, "teacher": args.teacher, "parameters": sum(p.numel() for p in model.parameters()),
        "batch_size": args.batch_size,
        "threads": args.threads, "steps": args.steps, "median_step_ms": median * 1e3,
        "images_per_sec": args.batch_size / median, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__, "precision": args.precision,
    }))


if __name__ == "__main__":
    main()
