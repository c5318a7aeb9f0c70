"""Notebook 11's tools: the layer table and its multiply-adds, side-by-side step timing,
the transposed convolution's overlap counts and the filter picture."""
import pytest
import torch
from matplotlib.figure import Figure
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vae_lab.lessons import conv as conv_lessons
from vae_lab import VAE, Config
from vae_lab.lessons.conv import (filter_figure, format_layer_table, layer_table, multiply_adds, overlap_counts,
                                  overlap_figure, training_step_seconds)


@pytest.fixture(scope="module")
def conv_vae():
    return VAE(Config(architecture="conv", seed=0)).eval()


def test_the_layer_table_follows_one_image_through_the_conv_vae(conv_vae):
    rows = layer_table(conv_vae)
    assert [r.name for r in rows] == ["encoder.conv1", "encoder.conv2", "encoder.mu", "encoder.logvar",
                                      "decoder.hidden", "decoder.deconv1", "decoder.deconv2"]
    assert [r.input_shape for r in rows] == [(1, 28, 28), (32, 14, 14), (3136,), (3136,), (20,), (64, 7, 7), (32, 14, 14)]
    assert [r.output_shape for r in rows] == [(32, 14, 14), (64, 7, 7), (20,), (20,), (3136,), (32, 14, 14), (1, 28, 28)]
    assert rows[1].parameters == 64 * (32 * 4 * 4 + 1)
    assert rows[1].multiply_adds == rows[5].multiply_adds == 64 * 7 * 7 * 32 * 4 * 4, "deconv1 is conv2 transposed"


@pytest.mark.parametrize("settings", [{"architecture": "conv"}, {}, {"architecture": "conv", "conditional": True},
                                      {"hidden_layers": 2, "hidden_dim": 50, "conditional": True}])
def test_the_tables_totals_match_the_parameter_count_and_torchs_flop_counter(settings):
    model = VAE(Config(**settings)).eval()
    rows = layer_table(model)
    labels = torch.zeros(1, dtype=torch.long) if model.config.conditional else None
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.decoder(model.encoder(torch.zeros(1, 784), labels)[0], labels)
    assert sum(r.parameters for r in rows) == model.parameter_count()
    assert sum(r.multiply_adds for r in rows) == counter.get_total_flops() // 2, "a flop counter counts 2 per multiply-add"


def test_the_layer_table_leaves_the_model_as_it_was(conv_vae):
    x = torch.rand(3, 784, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = conv_vae.encoder(x)
        layer_table(conv_vae)
        after = conv_vae.encoder(x)
    assert all(not module._forward_hooks for module in conv_vae.modules()), "every hook is removed again"
    torch.testing.assert_close(before, after)


def test_multiply_adds_per_kind_of_layer():
    conv = nn.Conv2d(3, 5, kernel_size=3, stride=2, padding=1)  # 9×9 → 5×5
    assert multiply_adds(conv, (3, 9, 9), (5, 5, 5)) == 5 * 5 * 5 * 3 * 3 * 3
    transposed = nn.ConvTranspose2d(5, 3, kernel_size=4, stride=2, padding=1)  # 5×5 → 10×10
    assert multiply_adds(transposed, (5, 5, 5), (3, 10, 10)) == 5 * 5 * 5 * 3 * 4 * 4
    assert multiply_adds(nn.Linear(7, 2), (7,), (2,)) == 14
    with pytest.raises(TypeError, match="counts Linear, Conv2d and ConvTranspose2d layers, got ReLU"):
        multiply_adds(nn.ReLU(), (7,), (7,))


def test_format_layer_table_ends_with_the_totals(conv_vae):
    rows = layer_table(conv_vae)
    lines = format_layer_table(rows).splitlines()
    assert lines[0].split() == ["layer", "kind", "input", "output", "parameters", "multiply-adds"]
    assert lines[1].split()[:4] == ["encoder.conv1", "Conv2d", "1×28×28", "32×14×14"]
    assert lines[-1].split() == ["total", f"{conv_vae.parameter_count():,}", f"{sum(r.multiply_adds for r in rows):,}"]


def test_training_step_seconds_times_copies_and_leaves_models_and_rng_alone():
    models = {"mlp": VAE(Config(latent_dim=4, hidden_dim=32, seed=0)), "conv": VAE(Config(architecture="conv", latent_dim=4))}
    before = {name: {k: v.clone() for k, v in model.state_dict().items()} for name, model in models.items()}
    rng = torch.get_rng_state()
    seconds = training_step_seconds(models, torch.rand(16, 784, generator=torch.Generator().manual_seed(1)), steps=2,
                                    batch_size=8)
    assert set(seconds) == {"mlp", "conv"} and all(s > 0 for s in seconds.values())
    assert torch.equal(torch.get_rng_state(), rng)
    for name, model in models.items():
        assert all(torch.equal(v, before[name][k]) for k, v in model.state_dict().items()), f"{name} was trained"


def test_training_step_seconds_is_the_mean_cpu_time_of_the_timed_turns_on_one_thread(monkeypatch):
    models = {"mlp": VAE(Config(latent_dim=4, hidden_dim=32, seed=0)), "conv": VAE(Config(architecture="conv", latent_dim=4))}
    durations = iter([0.5, 0.5, 3, 5, 1, 6, 2, 10])  # turns alternate mlp, conv; the first turn of each is the warm-up
    readings = []  # a turn reads the clock at its start and at its end

    def fake_clock():
        readings.append((readings[-1] if readings else 0.0) + (next(durations) if len(readings) % 2 else 0.0))
        return readings[-1]

    threads_during_steps = []
    real_loss = conv_lessons.vae_loss
    monkeypatch.setattr(conv_lessons.time, "process_time", fake_clock)
    monkeypatch.setattr(conv_lessons, "vae_loss",
                        lambda *args, **kwargs: threads_during_steps.append(torch.get_num_threads()) or real_loss(*args, **kwargs))
    threads = torch.get_num_threads()
    seconds = training_step_seconds(models, torch.rand(8, 784, generator=torch.Generator().manual_seed(1)), steps=3)
    assert seconds == {"mlp": 2, "conv": 7}, "the mean of the timed turns, the warm-up left out"
    assert threads_during_steps == [1] * 8 and torch.get_num_threads() == threads, "one thread, restored afterwards"


@pytest.mark.parametrize("steps, settings, message", [(0, {}, "steps must be a positive integer, got 0"),
                                                      (2, {"conditional": True}, "would also need labels")])
def test_training_step_seconds_refuses_what_it_cannot_time(steps, settings, message):
    with pytest.raises(ValueError, match=message):
        training_step_seconds({"m": VAE(Config(latent_dim=4, hidden_dim=32, **settings))}, torch.rand(4, 784), steps=steps)


def test_overlap_counts_are_even_when_the_stride_divides_the_kernel():
    even, uneven = overlap_counts(4, 2, 1, size=6), overlap_counts(3, 2, 1, size=6)
    assert even.shape == (12, 12) and uneven.shape == (11, 11), "(n − 1)·s − 2p + k"
    assert even[1:-1, 1:-1].unique().tolist() == [4.0]
    assert uneven[1:-1, 1:-1].unique().tolist() == [1.0, 2.0, 4.0]
    assert overlap_counts(3, 2, 0, size=5).sum() == 5 * 5 * 3 * 3, "without padding every stamp lands in the output"


def test_the_pictures(conv_vae):
    image = torch.rand(784, generator=torch.Generator().manual_seed(2))
    figure = filter_figure(conv_vae, image)
    assert isinstance(figure, Figure) and len(figure.axes) == 2
    assert isinstance(overlap_figure([(4, 2, 1), (3, 2, 1), (2, 2, 0)]), Figure)
    assert len(overlap_figure().axes) == 2
    with pytest.raises(ValueError, match="one 28×28 image"):
        filter_figure(conv_vae, image.repeat(2, 1))
    with pytest.raises(ValueError, match="load_pretrained\\('conv_vae'\\)"):
        filter_figure(VAE(Config(latent_dim=4, hidden_dim=32)), image)
