import math

import pytest
import torch

from visionmix.layers.relative_position import (log_relative_coords, relative_position_index, shifted_window_mask,
                                                window_geometry, window_partition, window_reverse)

CPU = torch.device("cpu")


@pytest.mark.parametrize("window, table", [((1, 1), (1, 1)), ((3, 3), (3, 3)), ((7, 7), (7, 7)), ((2, 3), (4, 4)),
                                           ((4, 2), (4, 5))])
def test_index_matches_the_closed_form(window, table):
    index = relative_position_index(window, table, CPU)
    length = window[0] * window[1]
    assert index.shape == (length, length) and index.dtype == torch.long
    for i in range(length):
        for j in range(length):
            d_row = i // window[1] - j // window[1]
            d_col = i % window[1] - j % window[1]
            assert index[i, j] == (d_row + table[0] - 1) * (2 * table[1] - 1) + (d_col + table[1] - 1)


def test_square_index_uses_every_table_row_and_is_cached():
    m = 4
    index = relative_position_index((m, m), (m, m), CPU)
    assert sorted(index.unique().tolist()) == list(range((2 * m - 1) ** 2))
    assert (index.diagonal() == (m - 1) * (2 * m - 1) + (m - 1)).all()  # zero offset: the table's centre
    assert relative_position_index((m, m), (m, m), CPU) is index


def test_window_larger_than_table_is_an_error():
    with pytest.raises(ValueError, match="larger than"):
        relative_position_index((5, 2), (4, 4), CPU)


@pytest.mark.parametrize("hw, window", [((6, 8), (3, 4)), ((4, 4), (4, 4)), ((5, 3), (1, 1)), ((6, 6), (2, 3))])
def test_partition_and_reverse_are_inverse(hw, window):
    x = torch.randn(2, *hw, 5)
    windows = window_partition(x, window)
    n_rows, n_cols = hw[0] // window[0], hw[1] // window[1]
    assert windows.shape == (2, n_rows * n_cols, window[0] * window[1], 5)
    for n in range(n_rows * n_cols):  # window n is the n-th block in row-major order, row-major inside
        r, c = (n // n_cols) * window[0], (n % n_cols) * window[1]
        torch.testing.assert_close(windows[:, n], x[:, r:r + window[0], c:c + window[1]].reshape(2, -1, 5))
    assert torch.equal(window_reverse(windows, window, hw), x)
    assert torch.equal(window_partition(window_reverse(windows, window, hw), window), windows)


def test_partition_rejects_an_unpadded_grid():
    with pytest.raises(ValueError, match="pad it first"):
        window_partition(torch.randn(1, 5, 4, 2), (2, 2))


@pytest.mark.parametrize("hw, m, shifted, expected", [
    ((16, 16), 8, True, ((8, 8), (4, 4), (16, 16))),
    ((16, 16), 8, False, ((8, 8), (0, 0), (16, 16))),
    ((5, 7), 4, True, ((4, 4), (2, 2), (8, 8))),
    ((3, 9), 8, True, ((3, 8), (0, 4), (3, 16))),  # short side: whole-side window, no shift along it
    ((8, 8), 8, True, ((8, 8), (0, 0), (8, 8))),  # one window covers the grid: nothing to shift
    ((1, 1), 8, True, ((1, 1), (0, 0), (1, 1))),
    ((4, 4), 1, True, ((1, 1), (0, 0), (4, 4))),
])
def test_window_geometry(hw, m, shifted, expected):
    assert tuple(window_geometry(hw, m, shifted)) == expected


def test_bad_window_size_is_a_clear_error():
    with pytest.raises(ValueError, match="window_size must be a positive integer"):
        window_geometry((4, 4), 0, False)


@pytest.mark.parametrize("hw, window, shift", [((5, 7), (3, 3), (1, 1)), ((4, 4), (2, 2), (1, 1)),
                                               ((6, 5), (4, 2), (2, 0)), ((5, 7), (4, 4), (0, 0))])
def test_mask_is_the_offset_non_cyclic_partition(hw, window, shift):
    """Real tokens attend iff floor((r - s_h) / M_h) and floor((c - s_w) / M_w) agree; padding keys never."""
    mask = shifted_window_mask(hw, window, shift, CPU)
    padded = [math.ceil(s / m) * m for s, m in zip(hw, window)]
    n_cols = padded[1] // window[1]
    assert mask.shape == ((padded[0] // window[0]) * n_cols, window[0] * window[1], window[0] * window[1])

    def original(n: int, i: int) -> tuple[int, int]:
        """(row, col) in the unrolled padded grid of token i of window n."""
        r = (n // n_cols) * window[0] + i // window[1]
        c = (n % n_cols) * window[1] + i % window[1]
        return (r + shift[0]) % padded[0], (c + shift[1]) % padded[1]

    for n in range(mask.shape[0]):
        for i in range(mask.shape[1]):
            ri, ci = original(n, i)
            for j in range(mask.shape[2]):
                rj, cj = original(n, j)
                real_key = rj < hw[0] and cj < hw[1]
                same = (ri - shift[0]) // window[0] == (rj - shift[0]) // window[0] and \
                       (ci - shift[1]) // window[1] == (cj - shift[1]) // window[1]
                expected = 0.0 if (same and real_key) or i == j else float("-inf")
                assert mask[n, i, j].item() == expected, (n, i, j)
    assert shifted_window_mask(hw, window, shift, CPU) is mask


def test_cached_tables_built_in_inference_mode_still_support_backward():
    with torch.inference_mode():
        index = relative_position_index((2, 5), (6, 6), CPU)
        mask = shifted_window_mask((3, 7), (2, 5), (1, 2), CPU)
    table = torch.randn(121, 2, requires_grad=True)
    # indexing saves the index, multiplying saves the mask: both must be ordinary tensors
    (table[index.flatten()].sum() + (table[0, 0] * mask).nan_to_num(neginf=0.0).sum()).backward()
    assert table.grad is not None


@pytest.mark.parametrize("window, normaliser", [((3, 3), (3, 3)), ((8, 8), (8, 8)), ((2, 5), (8, 8)),
                                                ((12, 12), (8, 8)), ((4, 3), (5, 7))])
def test_log_coords_match_the_closed_form_in_index_order(window, normaliser):
    """Row r holds (φ(Δr), φ(Δc)) of the offset that relative_position_index(window, window) maps to r."""
    coords = log_relative_coords(window, normaliser, CPU, torch.float64)
    assert coords.shape == ((2 * window[0] - 1) * (2 * window[1] - 1), 2) and coords.dtype == torch.float64
    index = relative_position_index(window, window, CPU)
    length = window[0] * window[1]
    for i in range(length):
        for j in range(length):
            for axis, delta in enumerate((i // window[1] - j // window[1], i % window[1] - j % window[1])):
                t = delta * 8 / (normaliser[axis] - 1)
                expected = math.copysign(math.log2(1 + abs(t)), t) / math.log2(8) if delta else 0.0
                assert coords[index[i, j], axis].item() == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_log_coords_reach_log8_of_9_at_the_built_window_and_are_cached():
    coords = log_relative_coords((8, 8), (8, 8), CPU, torch.float32)
    assert coords.abs().max().item() == pytest.approx(math.log2(9) / 3)  # |Δ| = M - 1 is scaled to 8, as V2
    assert log_relative_coords((8, 8), (8, 8), CPU, torch.float32) is coords
    assert log_relative_coords((8, 8), (8, 8), CPU, torch.float64) is not coords  # dtype is part of the key
    # a smaller window reads the same values for the offsets it has
    small = log_relative_coords((4, 4), (8, 8), CPU, torch.float32).view(7, 7, 2)
    torch.testing.assert_close(small, coords.view(15, 15, 2)[4:11, 4:11], rtol=0, atol=0)


def test_log_coords_of_a_one_token_window_are_finite():
    assert torch.equal(log_relative_coords((1, 1), (1, 1), CPU, torch.float32), torch.zeros(1, 2))


def test_log_coords_built_in_inference_mode_still_support_backward():
    with torch.inference_mode():
        coords = log_relative_coords((2, 3), (6, 6), CPU, torch.float32)
    weight = torch.randn(2, 4, requires_grad=True)
    (coords @ weight).square().sum().backward()  # matmul saves coords for weight's gradient
    assert weight.grad is not None
