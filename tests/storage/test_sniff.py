"""Sniffing: the type comes from the bytes; executables are never accepted."""

import struct
import zlib

import pytest

from storage.sniff import EXECUTABLE, UnsupportedType, check_type, sniff

IMAGES = frozenset({"image/png", "image/jpeg"})


def png_bytes() -> bytes:
    """A complete 1x1 grey PNG: signature, IHDR, IDAT and IEND with real CRCs."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1x1, 8-bit greyscale
    idat = zlib.compress(b"\x00\x80")  # filter byte + one pixel
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat)
            + chunk(b"IEND", b""))


JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + b"\x00" * 32
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
ELF = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + struct.pack("<HHI", 2, 0x3E, 1) + b"\x00" * 40
PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48
SCRIPT = b"#!/bin/sh\nrm -rf ~\n"
UNKNOWN = bytes([0x00, 0x13, 0x37, 0xC0, 0xFF, 0xEE, 0x00, 0xFE]) * 4


def test_a_real_png_is_image_png():
    assert sniff(png_bytes()) == "image/png"


def test_jpeg_magic_is_image_jpeg():
    assert sniff(JPEG) == "image/jpeg"


def test_a_pdf_header_is_application_pdf():
    assert sniff(PDF) == "application/pdf"


def test_an_allowed_type_passes_check_type_and_is_returned():
    assert check_type(png_bytes(), IMAGES) == "image/png"


def test_a_pdf_is_refused_where_only_images_are_allowed():
    with pytest.raises(UnsupportedType) as refused:
        check_type(PDF, IMAGES)
    assert refused.value.detected == "application/pdf"
    assert str(refused.value) == "the file is application/pdf; allowed: image/jpeg, image/png"


def test_an_elf_binary_named_as_an_image_is_an_executable():
    assert sniff(ELF) == EXECUTABLE


def test_an_executable_is_refused_even_when_executables_are_listed_as_allowed():
    with pytest.raises(UnsupportedType) as refused:
        check_type(ELF, IMAGES | {EXECUTABLE})
    assert refused.value.detected == EXECUTABLE
    assert str(refused.value) == (
        "the file is application/x-executable; allowed: image/jpeg, image/png")


@pytest.mark.parametrize(
    "magic",
    [b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe",
     b"\xca\xfe\xba\xbe"],
    ids=["macho32-be", "macho64-be", "macho32-le", "macho64-le", "universal"],
)
def test_every_mach_o_magic_is_an_executable(magic):
    assert sniff(magic + b"\x00" * 28) == EXECUTABLE


def test_a_windows_pe_is_an_executable():
    assert sniff(PE) == EXECUTABLE
    with pytest.raises(UnsupportedType):
        check_type(PE, IMAGES)


def test_a_shebang_script_is_an_executable_not_text():
    assert sniff(SCRIPT) == EXECUTABLE
    with pytest.raises(UnsupportedType) as refused:
        check_type(SCRIPT, frozenset({"text/plain"}))
    assert refused.value.detected == EXECUTABLE


def test_utf8_text_without_nul_bytes_is_text_plain():
    text = "Setlist: Für Elise, 夜に駆ける — encore ♪\n".encode()
    assert sniff(text) == "text/plain"
    assert check_type(text, frozenset({"text/plain"})) == "text/plain"


def test_text_that_is_not_utf8_is_not_text_plain():
    assert sniff("caf\u00e9 cr\u00e8me".encode("latin-1")) is None


def test_unknown_binary_is_none_and_refused_with_the_exact_message():
    assert sniff(UNKNOWN) is None
    with pytest.raises(UnsupportedType) as refused:
        check_type(UNKNOWN, frozenset({"text/plain", "image/png"}))
    assert refused.value.detected is None
    assert str(refused.value) == (
        "could not tell the file's type from its bytes; allowed: image/png, text/plain")


def test_empty_bytes_say_nothing_about_their_type():
    assert sniff(b"") is None
