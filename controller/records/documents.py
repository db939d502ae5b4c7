"""What the PDF documents written from the records share: settings, fonts, page furniture,
deterministic rendering, and writing a new private file that is chained as an event.

The documents (:mod:`~controller.records.report`, :mod:`~controller.records.handout`,
:mod:`~controller.records.course_report`) are built with ReportLab's page layout (platypus) and
its vector drawing (the session plot), no UI code and no system packages.

Deterministic: the same record gives the same bytes. ReportLab runs in *invariant* mode (no
clock, no random document id) and the PDF's creation and modification dates are a time taken
from the record (the session's end), so a report printed again later has the same SHA-256 as the
one chained when it was first written.

Fonts: Bitstream Vera (shipped inside ReportLab's wheel), embedded as subsets, so text
extracts and prints the same everywhere. It covers Latin-1, most of Latin Extended-A and the
symbols used here; a character outside it prints as an empty box (the record keeps it exactly).

Files: a new file only, never an existing one (a file, a folder, a symlink, even a dangling
one): the document is written to a temporary file (mode 0600) in the target's folder, synced,
then hard-linked to its name, which fails if the name was taken meanwhile, so nothing is ever
replaced and no half file is left. Only then is its event chained; if that fails the new file
is removed again, so a document on disk is always one the chain knows.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import hashlib
import io
import os
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape

from controller.records.errors import InvalidRecordError
from controller.records.export import OutputExistsError
from controller.records.models import EventRow, parse_iso
from controller.records.paths import FILE_MODE

if TYPE_CHECKING:
    from controller.records.store import RecordStore

#: Paper sizes a document can be written on (the handout is always A5).
PAPERS = ("A4", "Letter")
SIMULATOR_MARK = "SIMULATOR — not a treatment"
FONT = "EPMSans"
FONT_BOLD = "EPMSans-Bold"
FONT_ITALIC = "EPMSans-Italic"
_FONTS_LOCK = threading.Lock()


@dataclass(frozen=True)
class ReportSettings:
    """What a document says about where it was written (from the configuration:
    ``clinic.name``, ``clinic.contact``, ``station.name``, ``report.paper``)."""

    clinic_name: str = ""
    clinic_contact: str = ""
    station_name: str = ""
    paper: str = "A4"

    def __post_init__(self) -> None:
        if self.paper not in PAPERS:
            raise InvalidRecordError(
                f"paper {self.paper!r} is not one of {', '.join(PAPERS)}: set report.paper to "
                "A4 or Letter"
            )


@dataclass(frozen=True)
class ReportResult:
    """A document written: where, its SHA-256 (as chained), its pages and paper, and the
    chained event (None for a document that is not chained, the course report)."""

    path: Path
    sha256: str
    pages: int
    paper: str
    event: EventRow | None = None


# -- words --------------------------------------------------------------------------------------


def zone_words(name: str | None) -> str:
    """``temporal_left`` as ``Temporal left``, as the screens show zones."""
    return (name or "").replace("_", " ").capitalize()


def long_date(day: dt.date) -> str:
    """``Monday 30 March 2026`` (English, whatever the machine's locale: the same bytes)."""
    days = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
    months = (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    )
    return f"{days[day.weekday()]} {day.day} {months[day.month - 1]} {day.year}"


def text(value: object) -> str:
    """Recorded text made safe for a paragraph (markup escaped, line breaks kept)."""
    return escape(str(value)).replace("\n", "<br/>")


# -- files --------------------------------------------------------------------------------------


def refuse_existing(path: Path) -> None:
    """:class:`OutputExistsError` when ``path`` is taken by anything (even a dangling symlink)."""
    if os.path.lexists(path):
        raise OutputExistsError([path])


def write_new_file(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` as a new file, mode 0600, whole or not at all; never replace
    anything (:class:`OutputExistsError`, nothing written)."""
    refuse_existing(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with open(fd, "wb") as out:
            os.fchmod(out.fileno(), FILE_MODE)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(temp, path)  # atomic, and fails if the name exists: never replaces
        except FileExistsError:
            raise OutputExistsError([path]) from None
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # A file system without hard links: check again, then rename.
            refuse_existing(path)
            os.rename(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)


def publish_document(
    store: RecordStore,
    session_id: int,
    path: Path,
    pdf: bytes,
    *,
    pages: int,
    paper: str,
    document: str,
    kind: str,
    by: str | None = None,
    extra: Mapping[str, Any] | None = None,
) -> ReportResult:
    """Write ``pdf`` as the new file ``path``, then chain it as the session's ``kind`` event
    (``document``, ``sha256``, ``file``: the name only, ``pages``, ``paper``, ``by`` when
    known, and ``extra``). If the event cannot be written the file is removed again: a document
    on disk is always one the chain knows."""
    sha = hashlib.sha256(pdf).hexdigest()
    data: dict[str, Any] = {
        "document": document,
        "sha256": sha,
        "file": path.name,
        "pages": pages,
        "paper": paper,
        **(extra or {}),
    }
    if by and by.strip():
        data["by"] = by.strip()
    write_new_file(path, pdf)
    try:
        event = store.record_document(session_id, kind, data)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise
    return ReportResult(path=path, sha256=sha, pages=pages, paper=paper, event=event)


def pdf_date(stored: str | None) -> str:
    """A stored UTC time as a PDF date (``D:20260302120000+00'00'``); the epoch when unknown."""
    moment = parse_iso(stored).astimezone(dt.UTC) if stored else dt.datetime(1970, 1, 1)
    return moment.strftime("D:%Y%m%d%H%M%S+00'00'")


# -- rendering ----------------------------------------------------------------------------------


def _fonts() -> None:
    """Register Vera (ReportLab's own TTF files) as the documents' font family, once."""
    from reportlab import rl_config
    from reportlab.lib.fonts import addMapping
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.ttfonts import TTFont

    with _FONTS_LOCK:  # the UI may write a document from a worker thread
        if FONT in pdfmetrics.getRegisteredFontNames():
            return
        _register(pdfmetrics, TTFont, addMapping, Path(rl_config.__file__).parent / "fonts")


def _register(pdfmetrics: Any, ttfont: Any, add_mapping: Any, folder: Path) -> None:
    faces = {
        FONT: "Vera.ttf",
        FONT_BOLD: "VeraBd.ttf",
        FONT_ITALIC: "VeraIt.ttf",
        f"{FONT}-BoldItalic": "VeraBI.ttf",
    }
    for name, file in faces.items():
        pdfmetrics.registerFont(ttfont(name, str(folder / file)))
    add_mapping(FONT, 0, 0, FONT)
    add_mapping(FONT, 1, 0, FONT_BOLD)
    add_mapping(FONT, 0, 1, FONT_ITALIC)
    add_mapping(FONT, 1, 1, f"{FONT}-BoldItalic")


def page_size(paper: str) -> tuple[float, float]:
    from reportlab.lib import pagesizes

    sizes = {"A4": pagesizes.A4, "Letter": pagesizes.LETTER, "A5": pagesizes.A5}
    if paper not in sizes:
        raise InvalidRecordError(f"paper {paper!r} is not one of A4, Letter, A5")
    width, height = sizes[paper]
    return float(width), float(height)


def styles(base_size: float = 9.0) -> dict[str, Any]:
    """Paragraph styles in the documents' font: body, small, h1, h2, cell, cell_bold, mark."""
    from reportlab.lib import colors
    from reportlab.lib.styles import ParagraphStyle

    _fonts()
    body = ParagraphStyle("body", fontName=FONT, fontSize=base_size, leading=base_size * 1.3)
    return {
        "body": body,
        "small": ParagraphStyle(
            "small", parent=body, fontSize=base_size - 1.5, leading=(base_size - 1.5) * 1.3
        ),
        "h1": ParagraphStyle(
            "h1",
            parent=body,
            fontName=FONT_BOLD,
            fontSize=base_size + 6,
            leading=(base_size + 6) * 1.25,
            spaceAfter=4,
        ),
        "h2": ParagraphStyle(
            "h2",
            parent=body,
            fontName=FONT_BOLD,
            fontSize=base_size + 2,
            leading=(base_size + 2) * 1.3,
            spaceBefore=8,
            spaceAfter=3,
        ),
        "cell": ParagraphStyle("cell", parent=body, fontSize=base_size - 0.5),
        "cell_bold": ParagraphStyle(
            "cell_bold", parent=body, fontName=FONT_BOLD, fontSize=base_size - 0.5
        ),
        "outcome": ParagraphStyle(
            "outcome",
            parent=body,
            fontName=FONT_BOLD,
            fontSize=base_size + 1.5,
            leading=(base_size + 1.5) * 1.3,
            borderColor=colors.HexColor("#555555"),
            borderWidth=0.8,
            borderPadding=5,
            backColor=colors.HexColor("#f2f2f2"),
            spaceBefore=6,
            spaceAfter=10,
        ),
        "mark": ParagraphStyle(
            "mark",
            parent=body,
            fontName=FONT_BOLD,
            fontSize=base_size + 3,
            leading=(base_size + 3) * 1.3,
            textColor=colors.HexColor("#b00000"),
        ),
    }


@dataclass(frozen=True)
class Furniture:
    """What every page carries: a header (left, right), a footer (left), ``page N of M`` and,
    for a simulated session, the simulator mark in the header and as a watermark."""

    header_left: str
    header_right: str
    footer_left: str
    simulated: bool


def render(
    story: Sequence[Any],
    *,
    paper: str,
    furniture: Furniture,
    title: str,
    subject: str,
    created: str | None,
    margins_mm: float = 16.0,
) -> tuple[bytes, int]:
    """Lay out ``story`` (platypus flowables) on ``paper`` with ``furniture`` on every page;
    return the PDF's bytes and its page count. ``created`` (a stored time from the record) is
    the PDF's creation date: with ReportLab's invariant mode the same story gives the same
    bytes."""
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.platypus import BaseDocTemplate, Frame, PageTemplate

    _fonts()
    size = page_size(paper)
    width, height = size
    margin = margins_mm * mm
    header_h = 11 * mm if furniture.simulated else 7 * mm
    date = pdf_date(created)
    small = 7.0 if paper == "A5" else 7.5

    def header(canvas: Canvas, _doc: Any) -> None:
        canvas.saveState()
        if furniture.simulated:  # beneath the page's content
            canvas.setFillColor(colors.HexColor("#b00000"))
            canvas.setFillAlpha(0.07)
            canvas.setFont(FONT_BOLD, 60 if paper != "A5" else 42)
            canvas.translate(width / 2, height / 2)
            canvas.rotate(55)
            canvas.drawCentredString(0, 0, "SIMULATOR")
        canvas.restoreState()
        canvas.saveState()
        top = height - margin + 2 * mm
        canvas.setFont(FONT_BOLD, small + 1)
        canvas.drawString(margin, top, furniture.header_left)
        canvas.setFont(FONT, small + 1)
        canvas.drawRightString(width - margin, top, furniture.header_right)
        if furniture.simulated:
            canvas.setFillColor(colors.HexColor("#b00000"))
            canvas.setFont(FONT_BOLD, small + 3)
            canvas.drawCentredString(width / 2, top - 5 * mm, SIMULATOR_MARK)
        canvas.setStrokeColor(colors.HexColor("#888888"))
        canvas.setLineWidth(0.5)
        line_y = top - header_h + 4.5 * mm
        canvas.line(margin, line_y, width - margin, line_y)
        canvas.restoreState()

    class _Canvas(Canvas):  # type: ignore[misc]  # ReportLab has no type hints
        """Keeps each page until the end, to print ``page N of M`` on each."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.setDateFormatter(lambda *_: date)
            self._pages: list[dict[str, Any]] = []

        def showPage(self) -> None:  # noqa: N802 - ReportLab's name
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            total = len(self._pages)
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self.saveState()
                self.setFont(FONT, small)
                self.setStrokeColor(colors.HexColor("#888888"))
                self.setLineWidth(0.5)
                self.line(margin, margin - 3 * mm, width - margin, margin - 3 * mm)
                self.drawString(margin, margin - 7 * mm, furniture.footer_left)
                self.drawRightString(width - margin, margin - 7 * mm, f"page {number} of {total}")
                if furniture.simulated:
                    self.setFillColor(colors.HexColor("#b00000"))
                    self.setFont(FONT_BOLD, small)
                    self.drawCentredString(width / 2, margin - 11 * mm, SIMULATOR_MARK)
                self.restoreState()
                super().showPage()
            self.page_count = total
            super().save()

    buffer = io.BytesIO()
    doc = BaseDocTemplate(
        buffer,
        pagesize=size,
        leftMargin=margin,
        rightMargin=margin,
        topMargin=margin + header_h,
        bottomMargin=margin,
        title=title,
        author=furniture.header_left or "epm",
        subject=subject,
        creator="epm",
        invariant=1,
        pageCompression=1,
    )
    frame = Frame(
        doc.leftMargin, doc.bottomMargin, doc.width, doc.height, id="body", showBoundary=0
    )
    doc.addPageTemplates([PageTemplate(id="page", frames=[frame], onPage=header)])
    made: list[_Canvas] = []

    def maker(*args: Any, **kwargs: Any) -> _Canvas:
        canvas = _Canvas(*args, **kwargs)
        made.append(canvas)
        return canvas

    doc.build(list(story), canvasmaker=maker)
    return buffer.getvalue(), int(getattr(made[-1], "page_count", 0))


def key_values(
    rows: Sequence[tuple[str, str]], width: float, st: Mapping[str, Any], key_frac: float = 0.24
) -> Any:
    """A two-column table of label → value paragraphs (values already escaped markup)."""
    from reportlab.lib import colors
    from reportlab.platypus import Paragraph, Table, TableStyle

    data = [[Paragraph(k, st["cell_bold"]), Paragraph(v, st["cell"])] for k, v in rows]
    table = Table(data, colWidths=[width * key_frac, width * (1 - key_frac)], hAlign="LEFT")
    table.setStyle(
        TableStyle(
            [
                ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("TOPPADDING", (0, 0), (-1, -1), 1.2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 1.2),
                ("LEFTPADDING", (0, 0), (-1, -1), 2),
                ("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.HexColor("#dddddd")),
            ]
        )
    )
    return table
