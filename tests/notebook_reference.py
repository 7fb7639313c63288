"""The teaching notebook's network, verbatim (`../shared/seed/diffusion-notebook.md`), as the reference for parity tests."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class SimpleUNet(nn.Module):
    def __init__(self, channels=3, time_emb_dim=100):
        super().__init__()
        self.time_mlp = nn.Sequential(nn.Linear(1, time_emb_dim), nn.SiLU(), nn.Linear(time_emb_dim, time_emb_dim))
        self.conv1 = nn.Conv2d(channels, 64, 3, padding=1)
        self.conv2 = nn.Conv2d(64, 128, 3, stride=2, padding=1)
        self.conv3 = nn.Conv2d(128, 256, 3, stride=2, padding=1)
        self.time_proj = nn.Linear(time_emb_dim, 256)
        self.mid_conv1 = nn.Conv2d(256, 256, 3, padding=1)
        self.mid_conv2 = nn.Conv2d(256, 256, 3, padding=1)
        self.up1 = nn.ConvTranspose2d(256, 128, 4, stride=2, padding=1)
        self.up2 = nn.ConvTranspose2d(128 + 128, 64, 4, stride=2, padding=1)
        self.final = nn.Conv2d(64 + 64, channels, 3, padding=1)

    def forward(self, x, t):
        t_emb = self.time_mlp(t.unsqueeze(-1).float())
        x1 = F.silu(self.conv1(x))
        x = F.silu(self.conv2(x1))
        x2 = x
        x = F.silu(self.conv3(x))
        time_proj = self.time_proj(t_emb).unsqueeze(-1).unsqueeze(-1)
        x = x + time_proj
        x = F.silu(self.mid_conv1(x))
        x = F.silu(self.mid_conv2(x))
        x = F.silu(self.up1(x))
        x = torch.cat([x, x2], dim=1)
        x = F.silu(self.up2(x))
        x = torch.cat([x, x1], dim=1)
        return self.final(x)
