"""The capstone's checks (notebook 06): the reference pieces and independent correct ones pass, every known mistake gets
its named hint, the stubs are 'not attempted', and the lab's own functions are refused."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vae_lab
from vae_lab import Config, History, plots
from vae_lab.lessons import capstone


# ---- reference answers, as in the notebook's solution regions ----


class MyVAE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(784, 400)
        self.mu = nn.Linear(400, 20)
        self.logvar = nn.Linear(400, 20)
        self.decoder_hidden = nn.Linear(20, 400)
        self.out = nn.Linear(400, 784)

    def encode(self, x):
        h = F.relu(self.hidden(x))
        return self.mu(h), self.logvar(h)

    def reparameterize(self, mu, logvar):
        return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)

    def decode(self, z):
        return self.out(F.relu(self.decoder_hidden(z)))

    def forward(self, x):
        mu, logvar = self.encode(x)
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def negative_elbo(x, logits, mu, logvar):
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)
    return (bce + kl).mean()


def train_my_vae(model, loss_fn, train_images, test_images, epochs, seed, *, shuffling="every epoch", batch_size=128,
                 lr=1e-3, zero_grad=True, seeded=True):
    """The reference loop; the keyword switches reproduce the known mistakes."""
    if seeded:
        torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed) if seeded else torch.Generator().manual_seed(torch.seed() % 2**31)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.randperm(len(train_images), generator=shuffle) if shuffling == "once" else torch.arange(len(train_images))
    train_losses, test_losses = [], []
    for epoch in range(epochs):
        model.train()
        total = 0.0
        if shuffling == "every epoch":
            order = torch.randperm(len(train_images), generator=shuffle)
        for batch in order.split(batch_size):
            x = train_images[batch]
            loss = loss_fn(x, *model(x))
            if zero_grad:
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
        train_losses.append(total / len(train_images))
        model.eval()
        with torch.no_grad():
            test_total = sum(loss_fn(x, *model(x)).item() * len(x) for x in test_images.split(1000))
        test_losses.append(test_total / len(test_images))
    return train_losses, test_losses


# ---- independent correct answers ----


class SequentialVAE(nn.Module):
    """Another way to write it: nn.Sequential blocks, one head giving μ and log σ² by chunking."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, 400), nn.ReLU())
        self.to_mu, self.to_logvar = nn.Linear(400, 20), nn.Linear(400, 20)
        self.decoder = nn.Sequential(nn.Linear(20, 400), nn.ReLU(), nn.Linear(400, 784))

    def encode(self, x):
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def reparameterize(self, mu, logvar):
        std = (0.5 * logvar).exp()
        return std * torch.randn(mu.shape) + mu

    def decode(self, z):
        return self.decoder(z)

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def softplus_elbo(x, logits, mu, logvar):
    """BCE from logits written with softplus, KL with σ² spelled out, float64 inside."""
    logits, x = logits.double(), x.double()
    bce = (F.softplus(logits) - x * logits).sum(1)
    var = torch.exp(logvar.double())
    kl = 0.5 * (mu.double() ** 2 + var - 1 - logvar.double()).sum(1)
    return torch.mean(bce + kl)


def summed_then_divided_elbo(x, logits, mu, logvar):
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kl) / len(x)


def slicing_loop(model, loss_fn, train_images, test_images, epochs, seed):
    """Another loop: slices of a shuffled copy, the batch mean of batch losses, one test pass in a single batch."""
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    history = ([], [])
    for _ in range(epochs):
        shuffled = train_images[torch.randperm(train_images.shape[0], generator=g)]
        losses = []
        for start in range(0, len(shuffled), 128):
            x = shuffled[start:start + 128]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(x, *model(x))
            loss.backward()
            opt.step()
            losses.append(loss.item())
        history[0].append(sum(losses) / len(losses))
        with torch.no_grad():
            history[1].append(loss_fn(test_images, *model(test_images)).item())
    return history


def test_the_reference_and_independent_answers_pass(capsys):
    for model_class in (MyVAE, SequentialVAE):
        assert capstone.check_my_vae(model_class) is True
    for loss in (negative_elbo, softplus_elbo, summed_then_divided_elbo):
        assert capstone.check_negative_elbo(loss) is True
    for loop in (train_my_vae, slicing_loop):
        assert capstone.check_epoch_loop(loop) is True
    assert capsys.readouterr().out.count("✅") == 7


# ---- known mistakes, each with its hint ----


def with_change(method, body):
    """MyVAE with one method replaced."""
    return type("Mistake", (MyVAE,), {method: body})


class NoReLU(MyVAE):
    def encode(self, x):
        h = self.hidden(x)
        return self.mu(h), self.logvar(h)


class Wide(MyVAE):
    def __init__(self):
        super().__init__()
        self.hidden, self.mu, self.logvar = nn.Linear(784, 512), nn.Linear(512, 20), nn.Linear(512, 20)


MODEL_MISTAKES = {
    "layers": (Wide, "expected five nn.Linear layers"),
    "relu": (NoReLU, "the encoder has no ReLU"),
    "no noise": (with_change("reparameterize", lambda self, mu, logvar: mu + 0 * logvar), "z = μ: add the noise"),
    "variance": (with_change("reparameterize", lambda self, mu, logvar: mu + logvar.exp() * torch.randn_like(mu)),
                 "you scaled ε by σ²"),
    "log": (with_change("reparameterize", lambda self, mu, logvar: mu + logvar * torch.randn_like(mu)),
            "log σ² is a logarithm"),
    "sigmoid": (with_change("decode", lambda self, z: torch.sigmoid(self.out(F.relu(self.decoder_hidden(z))))),
                "decode returns probabilities"),
    "decodes mu": (with_change("forward", lambda self, x: (self.decode(self.encode(x)[0]), *self.encode(x))),
                   "forward decodes μ itself"),
    "lab's encoder": (with_change("encode", lambda self, x: vae_lab.model.Encoder()(x)), "write it yourself"),
    "lab's reparameterize": (with_change("reparameterize", lambda self, mu, logvar: vae_lab.reparameterize(mu, logvar)),
                             "write it yourself: you called vae_lab.reparameterize"),
}


@pytest.mark.parametrize("mistake", MODEL_MISTAKES)
def test_each_model_mistake_gets_its_hint(mistake, capsys):
    model_class, hint = MODEL_MISTAKES[mistake]
    assert capstone.check_my_vae(model_class) is False
    assert hint in capsys.readouterr().out


def bce(x, logits, reduction="none"):
    return F.binary_cross_entropy_with_logits(logits, x, reduction=reduction)


def kl(mu, logvar):
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp(), dim=1)


LOSS_MISTAKES = {
    "batch sum": (lambda x, f, m, v: (bce(x, f).sum(1) + kl(m, v)).sum(), "you summed over the batch"),
    "kl per batch": (lambda x, f, m, v: bce(x, f).sum(1).mean() + kl(m, v).sum(), "your KL is per batch, not per image"),
    "mean over pixels": (lambda x, f, m, v: bce(x, f, "mean") + kl(m, v).mean(), "mean over pixels"),
    "kl mean over dims": (lambda x, f, m, v: bce(x, f).sum(1).mean() + kl(m, v).mean() / 20, "averaged the KL over"),
    "no kl": (lambda x, f, m, v: bce(x, f).sum(1).mean(), "the KL term is missing"),
    "kl sign": (lambda x, f, m, v: bce(x, f).sum(1).mean() - kl(m, v).mean(), "sign"),
    "sigmoid then with_logits": (lambda x, f, m, v: bce(x, torch.sigmoid(f)).sum(1).mean() + kl(m, v).mean(),
                                 "BCE on probabilities after a sigmoid"),
    "sigmoid then bce": (lambda x, f, m, v: F.binary_cross_entropy(torch.sigmoid(f), x, reduction="sum") / len(x)
                         + kl(m, v).mean(), "BCE on probabilities after a sigmoid"),
    "log of sigmoid": (lambda x, f, m, v: -(x * torch.log(torch.sigmoid(f)) + (1 - x) * torch.log(1 - torch.sigmoid(f)))
                       .sum(1).mean() + kl(m, v).mean(), "your loss is not finite"),
    "per image": (lambda x, f, m, v: bce(x, f).sum(1) + kl(m, v), "return one number"),
    "item": (lambda x, f, m, v: torch.tensor((bce(x, f).sum(1) + kl(m, v)).mean().item()), "differentiable"),
    "lab's kl": (lambda x, f, m, v: bce(x, f).sum(1).mean() + vae_lab.kl_divergence(m, v).mean(),
                 "write it yourself: you called vae_lab.kl_divergence"),
    "lab's loss": (lambda x, f, m, v: vae_lab.vae_loss(x, f, m, v).total, "write it yourself"),
}


@pytest.mark.parametrize("mistake", LOSS_MISTAKES)
def test_each_loss_mistake_gets_its_hint(mistake, capsys):
    loss, hint = LOSS_MISTAKES[mistake]
    assert capstone.check_negative_elbo(loss) is False
    assert hint in capsys.readouterr().out


def loop_with(**mistake):
    return lambda *args: train_my_vae(*args, **mistake)


def last_batch_loss_loop(model, loss_fn, train_images, test_images, epochs, seed):
    torch.manual_seed(seed)
    shuffle = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_losses, test_losses = [], []
    for _ in range(epochs):
        for batch in torch.randperm(len(train_images), generator=shuffle).split(128):
            loss = loss_fn(train_images[batch], *model(train_images[batch]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        train_losses.append(loss.item())
        with torch.no_grad():
            test_losses.append(loss_fn(test_images, *model(test_images)).item())
    return train_losses, test_losses


LOOP_MISTAKES = {
    "no shuffling": (loop_with(shuffling="never"), "no shuffling"),
    "shuffled once": (loop_with(shuffling="once"), "you shuffle once"),
    "batch size": (loop_with(batch_size=100), "mini-batches of 128"),
    "learning rate": (loop_with(lr=1e-2), "learning rate 1e-3"),
    "no zero_grad": (loop_with(zero_grad=False), "optimizer.zero_grad()"),
    "unseeded": (loop_with(seeded=False), "two runs with the same seed differ"),
    "last batch": (last_batch_loss_loop, "the mean of its batches' losses"),
    "lab's fit": (lambda m, l, tr, te, e, s: vae_lab.fit(m, None), "write it yourself: you called vae_lab.fit"),
}


@pytest.mark.parametrize("mistake", LOOP_MISTAKES)
def test_each_loop_mistake_gets_its_hint(mistake, capsys):
    loop, hint = LOOP_MISTAKES[mistake]
    assert capstone.check_epoch_loop(loop) is False
    assert hint in capsys.readouterr().out


def test_untouched_stubs_are_not_attempted(capsys):
    class Stub(nn.Module):
        def __init__(self):
            super().__init__()
            raise NotImplementedError  # your code here

    def stub(*args):
        raise NotImplementedError  # your code here

    assert not capstone.check_my_vae(Stub)
    assert not capstone.check_negative_elbo(stub)
    assert not capstone.check_epoch_loop(stub)
    assert capsys.readouterr().out.count("not attempted") == 3


# ---- the trained model ----


@pytest.fixture(scope="module")
def trained(small):
    """The reference pieces trained like notebook 06, one epoch on 1,000 images."""
    config = Config(epochs=1, train_size=1000)
    torch.manual_seed(config.seed)
    model = MyVAE()
    losses = train_my_vae(model, negative_elbo, small.train_images, small.test_images, config.epochs, config.seed)
    return capstone.StudentVAE(model), History(train_loss=losses[0], test_loss=losses[1]), config


def test_the_trained_reference_lands_near_fit_and_draws_with_the_lab_plots(trained, small, capsys):
    vae, history, config = trained
    assert capstone.check_training(vae, history, config, small, negative_elbo, train_my_vae) is True
    assert "within" in capsys.readouterr().out
    figures = [plots.reconstruction_grid(vae, small.test_images), plots.sample_grid(vae, n=64),
               plots.loss_curve(history)]
    assert all(len(figure.axes) == 1 for figure in figures)
    assert vae.sample(4).shape == (4, 784) and 0 <= vae.reconstruct(small.test_images[:4]).min()


def test_the_training_check_names_a_slip_in_the_pieces_and_a_wrong_test_loss(trained, small, capsys):
    vae, history, config = trained
    assert not capstone.check_training(vae, history, config, small, LOSS_MISTAKES["kl per batch"][0], train_my_vae)
    assert "your KL is per batch, not per image" in capsys.readouterr().out
    summed = History(train_loss=history.train_loss, test_loss=[1000 * history.test_loss[-1]])
    assert not capstone.check_training(vae, summed, config, small, negative_elbo, train_my_vae)
    assert "average the loss over all test images" in capsys.readouterr().out
    untrained = capstone.StudentVAE(MyVAE())
    truthful = History(train_loss=[543.0], test_loss=[untrained.test_loss(small.test_images)])
    assert not capstone.check_training(untrained, truthful, config, small, negative_elbo, train_my_vae)
    assert "fit's" in capsys.readouterr().out


def test_the_training_check_is_not_attempted_on_the_labs_model(small, capsys):
    shipped = vae_lab.load_pretrained("vae")
    assert not capstone.check_training(shipped.model, shipped.history, Config(), small, negative_elbo, train_my_vae)
    assert "not attempted" in capsys.readouterr().out


def test_fit_test_loss_reuses_the_shipped_curve_for_the_labs_settings(small):
    curve = vae_lab.load_pretrained("vae").history.test_loss
    assert capstone.fit_test_loss(Config(epochs=3), small) == curve[2]
    assert capstone.fit_test_loss(Config(), small) == curve[9]
    assert math.isclose(capstone.tolerance(Config(), 105.6), 1.0)
