"""A minimal H.264 encoder: every macroblock is I_PCM (raw samples), every frame an IDR picture.

That is the smallest bitstream every H.264 decoder must accept (Constrained Baseline, 4:2:0, CAVLC), so SaveVideo
can write an ``.mp4`` a browser plays without ffmpeg or a native codec. The price is size: about 1.5 bytes per
pixel per frame, which is fine for the small images an emulator makes.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

__all__ = ["Bitstream", "encode_h264"]

_MB = 16
_LEVEL_IDC = 51  # level 5.1: frame sizes up to 36864 macroblocks (4096x2304)


class _Bits:
    """An MSB-first bit writer with Exp-Golomb codes."""

    def __init__(self) -> None:
        self.value = 0
        self.length = 0

    def u(self, width: int, value: int) -> None:
        self.value = (self.value << width) | (value & ((1 << width) - 1))
        self.length += width

    def ue(self, value: int) -> None:
        code = value + 1
        self.u(2 * code.bit_length() - 1, code)

    def se(self, value: int) -> None:
        self.ue(2 * value - 1 if value > 0 else -2 * value)

    def align_zero(self) -> None:
        self.u(-self.length % 8, 0)

    def trailing(self) -> None:
        self.u(1, 1)
        self.align_zero()

    def bytes(self) -> bytes:
        assert self.length % 8 == 0, "not byte aligned"
        return self.value.to_bytes(self.length // 8, "big")


def _escape(rbsp: bytes) -> bytes:
    """Insert emulation-prevention bytes: no ``00 00`` may be followed by a byte <= 3 inside a NAL unit."""
    out = bytearray()
    start = 0
    hit = rbsp.find(b"\x00\x00")
    while hit != -1:
        after = hit + 2
        if after < len(rbsp) and rbsp[after] <= 3:
            out += rbsp[start:after]
            out.append(3)
            start = after
            hit = rbsp.find(b"\x00\x00", after)
        else:
            hit = rbsp.find(b"\x00\x00", hit + 1)
    out += rbsp[start:]
    return bytes(out)


def _nal(kind: int, rbsp: bytes) -> bytes:
    return bytes((0x60 | kind,)) + _escape(rbsp)  # nal_ref_idc 3: every unit here is a reference


@dataclass(frozen=True)
class Bitstream:
    """The parameter sets (for the MP4 ``avcC`` box) and one IDR slice NAL unit per frame."""

    sps: bytes
    pps: bytes
    frames: tuple[bytes, ...]
    width: int
    height: int


def _sps(mbs_wide: int, mbs_high: int, width: int, height: int) -> bytes:
    bits = _Bits()
    bits.u(8, 66)  # profile_idc: Baseline
    bits.u(8, 0xC0)  # constraint_set0 and set1: Constrained Baseline
    bits.u(8, _LEVEL_IDC)
    bits.ue(0)  # seq_parameter_set_id
    bits.ue(0)  # log2_max_frame_num_minus4
    bits.ue(2)  # pic_order_cnt_type 2: output order is decoding order
    bits.ue(1)  # max_num_ref_frames
    bits.u(1, 0)  # gaps_in_frame_num_value_allowed_flag
    bits.ue(mbs_wide - 1)
    bits.ue(mbs_high - 1)
    bits.u(1, 1)  # frame_mbs_only_flag
    bits.u(1, 1)  # direct_8x8_inference_flag
    crop_right = (mbs_wide * _MB - width) // 2  # 4:2:0 crops in units of two pixels
    crop_bottom = (mbs_high * _MB - height) // 2
    if crop_right or crop_bottom:
        bits.u(1, 1)
        for offset in (0, crop_right, 0, crop_bottom):
            bits.ue(offset)
    else:
        bits.u(1, 0)
    bits.u(1, 0)  # vui_parameters_present_flag
    bits.trailing()
    return _nal(7, bits.bytes())


def _pps() -> bytes:
    bits = _Bits()
    bits.ue(0)  # pic_parameter_set_id
    bits.ue(0)  # seq_parameter_set_id
    bits.u(1, 0)  # entropy_coding_mode_flag: CAVLC
    bits.u(1, 0)  # bottom_field_pic_order_in_frame_present_flag
    bits.ue(0)  # num_slice_groups_minus1
    bits.ue(0)  # num_ref_idx_l0_default_active_minus1
    bits.ue(0)  # num_ref_idx_l1_default_active_minus1
    bits.u(1, 0)  # weighted_pred_flag
    bits.u(2, 0)  # weighted_bipred_idc
    bits.se(0)  # pic_init_qp_minus26
    bits.se(0)  # pic_init_qs_minus26
    bits.se(0)  # chroma_qp_index_offset
    bits.u(1, 1)  # deblocking_filter_control_present_flag
    bits.u(1, 0)  # constrained_intra_pred_flag
    bits.u(1, 0)  # redundant_pic_cnt_present_flag
    bits.trailing()
    return _nal(8, bits.bytes())


def _planes(frame: Image.Image, padded: tuple[int, int]) -> tuple[bytes, bytes, bytes]:
    """Limited-range BT.601 Y, Cb, Cr planes (chroma at half size), edges replicated into the padding."""
    canvas = Image.new("RGB", padded)
    canvas.paste(frame.resize(padded, Image.Resampling.NEAREST))  # fills the padding with stretched edges
    canvas.paste(frame, (0, 0))
    y, cb, cr = canvas.convert("YCbCr").split()
    half = (padded[0] // 2, padded[1] // 2)
    # Pillow's YCbCr is full range; H.264 without VUI means studio range. 0 is also kept out of PCM samples so
    # that raw sample bytes can never form a start code.
    luma = y.point(lambda v: 16 + v * 219 // 255).tobytes()
    chroma = [c.resize(half, Image.Resampling.BOX).point(lambda v: 16 + v * 224 // 255).tobytes() for c in (cb, cr)]
    return luma, chroma[0], chroma[1]


def _slice(frame: Image.Image, mbs_wide: int, mbs_high: int, idr_pic_id: int) -> bytes:
    luma, cb, cr = _planes(frame, (mbs_wide * _MB, mbs_high * _MB))
    stride = mbs_wide * _MB
    bits = _Bits()
    bits.ue(0)  # first_mb_in_slice
    bits.ue(7)  # slice_type: I (all slices of the picture)
    bits.ue(0)  # pic_parameter_set_id
    bits.u(4, 0)  # frame_num
    bits.ue(idr_pic_id)
    bits.u(1, 0)  # no_output_of_prior_pics_flag
    bits.u(1, 0)  # long_term_reference_flag
    bits.se(0)  # slice_qp_delta
    bits.ue(1)  # disable_deblocking_filter_idc: off
    bits.ue(25)  # first macroblock's mb_type: I_PCM
    bits.align_zero()
    out = bytearray(bits.bytes())
    later_mb_header = b"\x0d\x00"  # ue(25) = 000011010, then 7 alignment zeros
    for my in range(mbs_high):
        for mx in range(mbs_wide):
            if mx or my:
                out += later_mb_header
            for row in range(_MB):
                start = (my * _MB + row) * stride + mx * _MB
                out += luma[start : start + _MB]
            for plane in (cb, cr):
                for row in range(_MB // 2):
                    start = (my * _MB // 2 + row) * (stride // 2) + mx * _MB // 2
                    out += plane[start : start + _MB // 2]
    out.append(0x80)  # rbsp_slice_trailing_bits
    return _nal(5, bytes(out))


def encode_h264(frames: tuple[Image.Image, ...]) -> Bitstream:
    """Encode RGB frames of one size (any size: odd sides are padded by one pixel)."""
    width, height = frames[0].size
    mbs_wide, mbs_high = -(-width // _MB), -(-height // _MB)
    shown = (width + width % 2, height + height % 2)
    return Bitstream(
        sps=_sps(mbs_wide, mbs_high, *shown),
        pps=_pps(),
        frames=tuple(_slice(f, mbs_wide, mbs_high, i % 2) for i, f in enumerate(frames)),
        width=shown[0],
        height=shown[1],
    )
