"""The same DDPG update as numddpg's, written in plain PyTorch eager mode: the bench's rival.

Networks, init, Adam and polyak follow docs/reference.md §1 (as Spinning Up's PyTorch DDPG
does); the minibatch is sampled from a replay tensor with torch.randint each update, as the
PyTorch libraries do.  Only used by bench/update_speed.py; needs the optional `bench` extra.
"""
import torch
from torch import nn


def mlp(sizes, out_act):
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        layers.append(nn.ReLU() if i < len(sizes) - 2 else out_act)
    return nn.Sequential(*layers)


class TorchDDPG:
    def __init__(self, obs_dim, act_dim, hidden, gamma=0.99, polyak=0.995, lr=1e-3):
        self.pi = mlp([obs_dim, *hidden, act_dim], nn.Tanh())
        self.q = mlp([obs_dim + act_dim, *hidden, 1], nn.Identity())
        self.pi_targ = mlp([obs_dim, *hidden, act_dim], nn.Tanh())
        self.q_targ = mlp([obs_dim + act_dim, *hidden, 1], nn.Identity())
        self.pi_targ.load_state_dict(self.pi.state_dict())
        self.q_targ.load_state_dict(self.q.state_dict())
        for p in list(self.pi_targ.parameters()) + list(self.q_targ.parameters()):
            p.requires_grad_(False)
        self.pi_opt = torch.optim.Adam(self.pi.parameters(), lr=lr)
        self.q_opt = torch.optim.Adam(self.q.parameters(), lr=lr)
        self.gamma, self.polyak = gamma, polyak

    def update(self, obs, act, rew, obs2, done):
        with torch.no_grad():
            q_t = self.q_targ(torch.cat([obs2, self.pi_targ(obs2)], 1)).squeeze(1)
            y = rew + self.gamma * (1 - done) * q_t
        q = self.q(torch.cat([obs, act], 1)).squeeze(1)
        loss_q = ((q - y) ** 2).mean()
        self.q_opt.zero_grad()
        loss_q.backward()
        self.q_opt.step()
        for p in self.q.parameters():
            p.requires_grad_(False)
        loss_pi = -self.q(torch.cat([obs, self.pi(obs)], 1)).mean()
        self.pi_opt.zero_grad()
        loss_pi.backward()
        self.pi_opt.step()
        for p in self.q.parameters():
            p.requires_grad_(True)
        with torch.no_grad():
            for net, targ in ((self.pi, self.pi_targ), (self.q, self.q_targ)):
                for p, p_t in zip(net.parameters(), targ.parameters()):
                    p_t.mul_(self.polyak).add_((1 - self.polyak) * p)

    def burst(self, data, batch_size, K):
        """K updates on minibatches drawn from the replay tensors in ``data``."""
        n = data[0].shape[0]
        for _ in range(K):
            idx = torch.randint(0, n, (batch_size,))
            self.update(*(d[idx] for d in data))
