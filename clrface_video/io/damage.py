"""Damaged video passed over while decoding: the frames it takes out, said in one warning per damaged stretch."""
from __future__ import annotations

import heapq
import logging
from dataclasses import dataclass, field
from fractions import Fraction

import av

from clrface_video.io.matroska_blocks import BlockWalk

MAX_DAMAGED = 25  # packets the decoder refuses that are passed over (bit rot) before the file counts as corrupt
REFUSED = (av.error.InvalidDataError, av.error.ExternalError)  # a damaged packet, as a decoder refuses it: invalid
# data, or its library's own failure (zlib's, inside a PNG or an animated PNG's frame)
log = logging.getLogger(__name__)


@dataclass
class Damage:
    """The packets of a stream the decoder refused and that were passed over, and the frames left out with them
    (those and the ones the decoder dropped after them), which a stated frame count still counts."""

    packets: int = 0
    frames: int = 0


@dataclass
class Losses:
    """Which frames a damaged stretch of a stream takes out, told from the packets' times (pts) against those of
    the frames the decoder gives, in display order: a frame shown at t means that every packet timed before t and
    not shown by then never will be.

    Why: the decoder refuses a damaged packet (its frame said passed over), but it also drops the frames after one
    without a word: a transport stream that lost a run of its 188-byte packets (its demuxer marks the packet
    around the gap corrupt) was restored without 7 of its 48 frames, 0.29 s, and nothing said. A frame missing
    where nothing was damaged (before a stream's first keyframe) is not counted: that is no damage.

    A keyframe shown after damage is not yet the end of it: the decoder may drop the frames after it too (an HEVC
    stream with B-frames that lost 40 packets dropped 11 frames after its next keyframe, and the keyframe had cleared
    the suspicion, so nothing was said), so damage stays about until a frame after a keyframe comes with none
    skipped. A frame whose packet was lost whole (its pts never read) leaves only its time: it is counted from the
    gap between the frames shown around it where the stream is steady (every frame shown before the damage one
    step of its rate after the last), and not where it is not: a phone's variable-rate clip remuxed into a .ts,
    its frames up to twice a step apart, that lost 7 frames was said to have lost 16.

    Damage need not be marked at all: where the run of packets a .ts lost leaves its continuity count as it was,
    no packet is marked corrupt, and an HEVC stream that lost 40 packets gave 10 of its 96 frames without a word.
    A packet whose frame never comes, once a frame has come, is damage itself: before the first frame (an open
    GOP's leading pictures, B-frames before a seek's keyframe) it is not, nor within the frame shown before it (a
    field's second half); the last packet's frame never counts (a file cut short). Damage that was marked ends
    only at a keyframe whose packet came after it: H.264's parser in a .ts hands on the packet before the one the
    demuxer marks, and the keyframe before the damage, which a threaded decoder gives after the mark, ended it
    before 2 frames lost whole after it (`spills`, `damaged_to`)."""

    name: str  # the file's, for the warning
    origin: int  # the stream's first pts
    time_base: Fraction
    step: int | None  # ticks of a frame at the stream's rate, for a count and an end where nothing else gives one
    damage: Damage
    since: int | None = None  # where this reading starts (a seek's): frames lost before it are the earlier one's
    owed: list[int] = field(default_factory=list)  # times of the packets whose frames have not come (a heap)
    suspect: bool = False  # a packet marked corrupt came, and no frame after a keyframe since: frames may go missing
    demuxed: int = 0  # packets demuxed so far
    latest: int | None = None  # the latest pts demuxed
    order: dict[int, int] = field(default_factory=dict)  # a pts whose frame has not come: its packet's place (demuxed)
    damaged_to: int | None = None  # packets demuxed when damage was last found: a keyframe ends it only past them
    spills: bool = False  # a packet marked corrupt came last: a parser (H.264's in a .ts) hands on the packet before
    # the one the demuxer marks, so the damage is in the next (a keyframe that lost its middle, still shown)
    restarted: bool = False  # the last frame shown was a keyframe
    steady: bool = True  # every frame shown outside damage came one step after the last: frames counted by time
    last: int | None = None  # the last frame shown's pts
    final: int | None = None  # the last packet's pts (a file cut short ends part way through it)
    lost: list[int] = field(default_factory=list)  # times of this stretch's frames left out
    shown_end: int | None = None  # where the last frame shown ends
    walk: BlockWalk | None = None  # a Matroska file's, whose demuxer passes over damaged elements without a word
    last_pos: int | None = None  # where the last packet demuxed starts in the file (for `walk`)
    reach: int | None = None  # where the packets demuxed so far end, the latest

    def packet(self, packet: av.Packet, timed: bool) -> None:
        """A packet demuxed; timed: its pts is the one its frame will show at (the demuxer's clock is trusted).
        Where the file's elements do not lead from the last packet to this one (`walk`), the demuxer read on past
        damage: the frames from where the packets before it end are lost, up to the next frame shown."""
        if packet.is_keyframe and packet.pts is not None and self.latest is not None and packet.pts <= self.latest:
            self._rejoined()
        if timed and packet.size and packet.pts is not None and not packet.is_discard:  # (an edit list's trim)
            heapq.heappush(self.owed, packet.pts)
            self.final = packet.pts
        if packet.pts is not None:
            self.demuxed += 1
            self.latest = packet.pts if self.latest is None else max(self.latest, packet.pts)
            self.order[packet.pts] = self.demuxed
            if self.spills:  # the packet after one marked corrupt is damaged too (see `spills`)
                self.damaged_to, self.spills = self.demuxed, False
        if packet.is_corrupt:
            self._found()
            self.spills = True
        if not packet.size:
            return
        if self.walk is not None and packet.pos is not None and packet.pos >= 0:
            if self.last_pos is not None and self.reach is not None and not self.walk.joined(self.last_pos, packet.pos):
                self.lost.append(self.reach)
                self._found()
            self.last_pos = packet.pos
        if packet.pts is not None:
            self.reach = max(self.reach or packet.pts, packet.pts + (packet.duration or self.step or 0))

    def refused(self, pts: int, timed: bool) -> None:
        """The decoder refused a packet, timed `pts`. timed: the frames' times are the packets' own, so those
        that never come are found by them (shown); a threaded decoder refuses a damaged packet only a few packets
        later, when its frame is due, so `pts` may be another frame's, which still comes. Else its frame is the one
        left out, at `pts`."""
        self.damage.packets += 1
        if timed:
            self._found()
        else:
            self.lost.append(pts)

    def shown(self, frame: av.VideoFrame) -> None:
        """A frame the decoder gave, in display order: the packets timed before it that gave none are lost (where
        damage is about), and a damaged stretch that ends before it is said."""
        if frame.pts is None:
            return
        skipped = []
        while self.owed and self.owed[0] <= frame.pts:
            if (pts := heapq.heappop(self.owed)) < frame.pts:
                skipped.append(pts)
        if self.last is not None and any(pts >= self.shown_end for pts in skipped):  # type: ignore[operator]
            self._found()  # a frame the decoder dropped with nothing marked (within the frame before: a field's half)
        if (self.lost or self.suspect) and (self.last is not None or self.since is None):  # a seek's first frame:
            self.lost.extend(skipped)  # the packets before it from where the seek landed, which no decoder shows
            gap = self.shown_end is not None and frame.pts - self.shown_end >= (self.step or 0)
            if self._by_time and gap and not any(self.shown_end <= pts < frame.pts for pts in self.lost):
                self.lost.append(self.shown_end)  # a frame's time or more with no frame: packets lost whole
        elif self.last is not None and self.step:
            self.steady = self.steady and abs(frame.pts - self.last - self.step) <= 1  # a tick: the rate's rounding
        self.last = frame.pts
        if self.lost and frame.pts > max(self.lost):
            self._say(frame.pts)
        self.suspect = self.suspect and not (self.restarted and not skipped)  # the decoder started afresh
        place = self.order.pop(frame.pts, None)  # (a recording joined to another shows its times again)
        self.restarted = frame.key_frame and (self.damaged_to is None or (place or 0) > self.damaged_to)  # past it
        end = frame.pts + (frame.duration or self.step or 0)  # a frame the decoder gives late, behind the others
        self.shown_end = end if self.shown_end is None else max(self.shown_end, end)  # (MPEG-2 after damage) opens no gap

    def end(self) -> None:
        """The stream ended: a damaged stretch still open runs to its end, with the frames that never came after
        the last one shown where damage is about (a decoder that finds no keyframe after damage gives no frame to
        the end: an HEVC stream with one keyframe that lost 10 packets half way was restored without its last 54
        of 96 frames, and nothing was said). The last packet's frame is not counted: a file cut short ends part way
        through it (marked corrupt or refused), which io.completeness tells and says, or refuses where the file
        states more. Where a frame came, the packets after it that gave none were dropped, marked or not."""
        if self.suspect or self.last is not None:  # where frames came: the decoder gave none for these
            self.lost.extend(pts for pts in self.owed if pts != self.final and pts >= (self.shown_end or pts))
        if self.lost:
            self._say(max(self.lost) + (self.step or 0))

    def _rejoined(self) -> None:
        """A keyframe timed no later than a packet before it: another recording joined on (MPEG-TS files
        concatenate), its times starting again, as no stream's keyframe does (every frame decoded before a keyframe
        is shown before it). The times before it no longer tell which frames are missing, and its own frames,
        shown after those still to come, would be taken for ones the decoder dropped: two broadcasts of 48 frames
        joined were said to have lost 92. What is lost so far is said, and the count starts afresh."""
        if self.lost:
            self._say(max(max(self.lost) + (self.step or 0), self.shown_end or 0))
        self.owed, self.order, self.suspect, self.spills, self.restarted = [], {}, False, False, False
        self.last = self.damaged_to = self.latest = None

    def _found(self) -> None:
        """Damage found: frames may go missing from here on, up to a keyframe the decoder gives from a packet
        demuxed after this one (one demuxed before it, shown late, B-frames coming first, ends nothing)."""
        self.suspect = True
        self.damaged_to = self.demuxed

    @property
    def _by_time(self) -> bool:
        """Whether frames lost are counted by the time they leave empty (steady)."""
        return bool(self.step) and self.steady

    def _say(self, until: int) -> None:
        """One warning for the stretch lost up to `until` (the next frame shown, or the stream's end): where it
        starts (the end of the frame shown before it) and how many frames and seconds it takes out; the count at
        the stream's rate where that is more than the packets and the rate is steady (a packet lost whole leaves
        only its time to count). Frames lost before `since` are not this reading's: a Ray segment whose seek
        landed before its keyframe said its neighbour's damage again, and counted it twice."""
        lost, self.lost = [pts for pts in self.lost if self.since is None or pts >= self.since], []
        if not lost:
            return  # an earlier reading's (a Ray segment before this one), which it says and counts
        start = min(lost) if self.shown_end is None else min(self.shown_end, min(lost))
        start = start if self.since is None else max(start, self.since)
        seconds = (until - start) * self.time_base
        frames = max(len(lost), round(seconds / (self.step * self.time_base)) if self._by_time else 0)
        self.damage.frames += frames
        log.warning("%s: damaged video at %.3f s is passed over: %d frame%s (%.2f s) left out", self.name,
                    float((start - self.origin) * self.time_base), frames, "" if frames == 1 else "s",
                    float(seconds))
