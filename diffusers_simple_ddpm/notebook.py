"""The teaching notebook's code (`../shared/seed/diffusion-notebook.md`): its `SimpleUNet` and its `DiffusionModel`
(schedule tables, forward process, loss and ancestral sampling loop), statement for statement without its comments.

This is the reference that the package's components are measured against: the tests check that `SimpleUNet2DModel`
and `SimpleDDPMScheduler` reproduce it, the benchmarks time the notebook's own training iteration beside the package's,
and a `SimpleUNet` state_dict is what `simple-ddpm convert` reads. Nothing else in the package uses it. The code is
kept as the notebook wrote it, bugs included: `DiffusionModel.p_sample` tests `if t > 0` on a batch tensor, so
`sample` only works for a batch of one, and the schedule tables are plain attributes that `.to(device)` leaves behind.
"""

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


class DiffusionModel(nn.Module):
    def __init__(self, model, beta_start=1e-4, beta_end=0.02, timesteps=1000):
        super().__init__()
        self.model = model
        self.timesteps = timesteps
        self.betas = torch.linspace(beta_start, beta_end, timesteps)
        self.alphas = 1 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.alphas_cumprod_prev = F.pad(self.alphas_cumprod[:-1], (1, 0), value=1.0)
        self.sqrt_recip_alphas = torch.sqrt(1.0 / self.alphas)
        self.sqrt_alphas_cumprod = torch.sqrt(self.alphas_cumprod)
        self.sqrt_one_minus_alphas_cumprod = torch.sqrt(1.0 - self.alphas_cumprod)
        self.posterior_variance = self.betas * (1.0 - self.alphas_cumprod_prev) / (1.0 - self.alphas_cumprod)

    def q_sample(self, x_0, t, noise=None):
        """Forward diffusion process: add noise to the data"""
        if noise is None:
            noise = torch.randn_like(x_0)
        sqrt_alphas_cumprod_t = self.sqrt_alphas_cumprod[t]
        sqrt_one_minus_alphas_cumprod_t = self.sqrt_one_minus_alphas_cumprod[t]
        sqrt_alphas_cumprod_t = sqrt_alphas_cumprod_t.reshape(-1, 1, 1, 1)
        sqrt_one_minus_alphas_cumprod_t = sqrt_one_minus_alphas_cumprod_t.reshape(-1, 1, 1, 1)
        return sqrt_alphas_cumprod_t * x_0 + sqrt_one_minus_alphas_cumprod_t * noise

    def p_losses(self, x_0, t, noise=None):
        """Calculate the loss for training"""
        if noise is None:
            noise = torch.randn_like(x_0)
        x_noisy = self.q_sample(x_0, t, noise)
        predicted_noise = self.model(x_noisy, t)
        loss = F.mse_loss(noise, predicted_noise)
        return loss

    @torch.no_grad()
    def p_sample(self, x_t, t):
        """Sample from p(x_{t-1} | x_t) - one step of the reverse process"""
        predicted_noise = self.model(x_t, t)
        beta_t = self.betas[t]
        sqrt_recip_alpha_t = self.sqrt_recip_alphas[t]
        beta_t = beta_t.reshape(-1, 1, 1, 1)
        sqrt_recip_alpha_t = sqrt_recip_alpha_t.reshape(-1, 1, 1, 1)
        mean = sqrt_recip_alpha_t * (x_t - (beta_t / torch.sqrt(1 - self.alphas_cumprod[t])) * predicted_noise)
        if t > 0:
            variance = torch.sqrt(self.posterior_variance[t])
            variance = variance.reshape(-1, 1, 1, 1)
            noise = torch.randn_like(x_t)
            return mean + variance * noise
        else:
            return mean

    @torch.no_grad()
    def sample(self, batch_size, img_shape, device):
        """Generate samples by running the complete reverse process"""
        img = torch.randn(batch_size, *img_shape, device=device)
        for t in reversed(range(self.timesteps)):
            t_batch = torch.full((batch_size,), t, device=device, dtype=torch.long)
            img = self.p_sample(img, t_batch)
        return img
