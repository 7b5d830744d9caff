"""A small ResNet on synthetic images, trained with DistributedDataParallel."""
import argparse
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from batchai_jupyter import Run


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential() if stride == 1 and cin == cout else \
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        return F.relu(self.b2(self.c2(y)) + self.skip(x))

class SmallResNet(nn.Module):
    def __init__(self, classes=10, width=16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.layers = nn.Sequential(Block(width, width, 1), Block(width, 2 * width, 2),
                                    Block(2 * width, 4 * width, 2))
        self.head = nn.Linear(4 * width, classes)
    def forward(self, x):
        x = self.layers(self.stem(x))
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=20)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--warmup", type=int, default=2)
args = parser.parse_args()

cuda = torch.cuda.is_available()
dist.init_process_group("nccl" if cuda else "gloo")   # env:// from MASTER_ADDR, RANK, ...
rank, world = dist.get_rank(), dist.get_world_size()
device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else torch.device("cpu")
torch.manual_seed(rank)
torch.set_num_threads(1)
model = nn.parallel.DistributedDataParallel(SmallResNet().to(device),
                                            device_ids=[device.index] if cuda else None)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
images = torch.randn(args.batch_size, 3, 32, 32, device=device)   # synthetic data
labels = torch.randint(0, 10, (args.batch_size,), device=device)
run = Run.get_context()
start = None
for step in range(args.steps + args.warmup):
    if step == args.warmup:
        dist.barrier()
        start = time.time()
    opt.zero_grad()
    loss = F.cross_entropy(model(images), labels)
    loss.backward()
    opt.step()
    if rank == 0:
        run.log("loss", loss.item(), step=step)
dist.barrier()
elapsed = time.time() - start
rate = args.steps * args.batch_size * world / elapsed
if rank == 0:
    print(f"{world} processes, {args.steps} steps: {rate:.1f} images/sec", flush=True)
    run.log("images_per_sec", rate)
dist.barrier()  # leave together: gloo aborts a rank whose peer closed the connection first
dist.destroy_process_group()
