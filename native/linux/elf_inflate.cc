// InflateZlib (see elf_inflate.h): a canonical-Huffman DEFLATE decoder in the manner of
// zlib's contrib/puff (Mark Adler's reference decoder), written for this reader: a
// decode is a table lookup per code length, every input byte is bounds-checked, and the
// output never grows past the size the section header promised.
#include "elf_inflate.h"

#include <cstring>

namespace iokitsnap {
namespace elf {
namespace {

constexpr int kMaxBits = 15;        // the longest DEFLATE code
constexpr int kMaxLengthCodes = 286;
constexpr int kMaxDistanceCodes = 30;

// A canonical Huffman code: how many codes of each length, and the symbols in code order.
struct Huffman {
  uint16_t count[kMaxBits + 1] = {};
  uint16_t symbol[288] = {};  // the most symbols of one code: the fixed literal/length code
};

class Inflater {
 public:
  Inflater(const uint8_t* in, size_t size, size_t expected) : in_(in), size_(size), expected_(expected) {
    out_.reserve(expected);
  }

  std::vector<uint8_t> Run() {
    // RFC 1950: CMF (method 8, window ≤ 32 KiB), FLG (no preset dictionary), a check on both.
    if (size_ < 6) return {};
    const unsigned cmf = in_[0], flg = in_[1];
    if ((cmf & 0x0f) != 8 || (cmf >> 4) > 7 || (flg & 0x20) != 0 || ((cmf << 8) | flg) % 31 != 0) return {};
    pos_ = 2;
    bool last = false;
    while (!last && ok_) {
      last = Bits(1) == 1;
      switch (Bits(2)) {
        case 0: Stored(); break;
        case 1: Fixed(); break;
        case 2: Dynamic(); break;
        default: ok_ = false;
      }
    }
    if (!ok_ || out_.size() != expected_) return {};
    // The Adler-32 of the output, big-endian, on the next byte boundary.
    if (size_ - pos_ < 4) return {};
    const uint32_t stored = (uint32_t{in_[pos_]} << 24) | (uint32_t{in_[pos_ + 1]} << 16) |
                            (uint32_t{in_[pos_ + 2]} << 8) | uint32_t{in_[pos_ + 3]};
    if (stored != Adler32()) return {};
    return std::move(out_);
  }

 private:
  // `count` bits, least significant first; 0 and ok_ = false past the end.
  uint32_t Bits(int count) {
    uint64_t value = bitBuffer_;
    while (bitCount_ < count) {
      if (pos_ >= size_) {
        ok_ = false;
        return 0;
      }
      value |= uint64_t{in_[pos_++]} << bitCount_;
      bitCount_ += 8;
    }
    bitBuffer_ = value >> count;
    bitCount_ -= count;
    return static_cast<uint32_t>(value & ((uint64_t{1} << count) - 1));
  }

  void Stored() {
    bitBuffer_ = 0;  // to the byte boundary
    bitCount_ = 0;
    if (size_ - pos_ < 4) {
      ok_ = false;
      return;
    }
    const unsigned length = in_[pos_] | (unsigned{in_[pos_ + 1]} << 8);
    const unsigned complement = in_[pos_ + 2] | (unsigned{in_[pos_ + 3]} << 8);
    pos_ += 4;
    if (length != (~complement & 0xffff) || length > size_ - pos_ || length > expected_ - out_.size()) {
      ok_ = false;
      return;
    }
    out_.insert(out_.end(), in_ + pos_, in_ + pos_ + length);
    pos_ += length;
  }

  // Builds `code` from the code length of each of `n` symbols; false when the lengths
  // over-subscribe (more codes of a length than fit). An incomplete code is kept: a
  // symbol it lacks fails when decoded.
  static bool Build(Huffman& code, const uint8_t* lengths, int n) {
    std::memset(code.count, 0, sizeof code.count);
    for (int s = 0; s < n; s++) code.count[lengths[s]]++;
    if (code.count[0] == n) return true;  // no codes: any decode fails
    int left = 1;
    for (int length = 1; length <= kMaxBits; length++) {
      left <<= 1;
      left -= code.count[length];
      if (left < 0) return false;
    }
    uint16_t offsets[kMaxBits + 1];
    offsets[1] = 0;
    for (int length = 1; length < kMaxBits; length++) offsets[length + 1] = offsets[length] + code.count[length];
    for (int s = 0; s < n; s++)
      if (lengths[s] != 0) code.symbol[offsets[lengths[s]]++] = static_cast<uint16_t>(s);
    return true;
  }

  // One symbol, read a bit at a time against the canonical code; -1 when no code matches.
  int Decode(const Huffman& code) {
    int value = 0, first = 0, index = 0;
    for (int length = 1; length <= kMaxBits; length++) {
      value |= static_cast<int>(Bits(1));
      if (!ok_) return -1;
      const int count = code.count[length];
      if (value - count < first) return code.symbol[index + (value - first)];
      index += count;
      first += count;
      first <<= 1;
      value <<= 1;
    }
    ok_ = false;
    return -1;
  }

  // Literal/length and distance symbols until end-of-block.
  void Codes(const Huffman& lengthCode, const Huffman& distanceCode) {
    static constexpr uint16_t kLengthBase[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                                  31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
    static constexpr uint8_t kLengthExtra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                                 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
    static constexpr uint16_t kDistanceBase[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                                    33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                                    1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577};
    static constexpr uint8_t kDistanceExtra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                                   6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};
    for (;;) {
      int symbol = Decode(lengthCode);
      if (!ok_ || symbol < 0) {
        ok_ = false;
        return;
      }
      if (symbol < 256) {
        if (out_.size() >= expected_) {
          ok_ = false;
          return;
        }
        out_.push_back(static_cast<uint8_t>(symbol));
        continue;
      }
      if (symbol == 256) return;
      symbol -= 257;
      if (symbol >= 29) {
        ok_ = false;
        return;
      }
      const size_t length = kLengthBase[symbol] + Bits(kLengthExtra[symbol]);
      const int distanceSymbol = Decode(distanceCode);
      if (!ok_ || distanceSymbol < 0 || distanceSymbol >= 30) {
        ok_ = false;
        return;
      }
      const size_t distance = kDistanceBase[distanceSymbol] + Bits(kDistanceExtra[distanceSymbol]);
      if (!ok_ || distance > out_.size() || length > expected_ - out_.size()) {
        ok_ = false;
        return;
      }
      // Byte by byte: the copy may overlap what it writes (distance < length).
      for (size_t i = 0; i < length; i++) out_.push_back(out_[out_.size() - distance]);
    }
  }

  void Fixed() {
    static const std::pair<Huffman, Huffman> codes = [] {
      std::pair<Huffman, Huffman> built;
      uint8_t lengths[288];
      int s = 0;
      for (; s < 144; s++) lengths[s] = 8;
      for (; s < 256; s++) lengths[s] = 9;
      for (; s < 280; s++) lengths[s] = 7;
      for (; s < 288; s++) lengths[s] = 8;
      // All 288 and 32 symbols take part in the codes (286, 287, 30 and 31 never occur, and
      // decode as errors): leaving a symbol out would shift every longer code after it.
      Build(built.first, lengths, 288);
      uint8_t distances[32];
      std::memset(distances, 5, sizeof distances);
      Build(built.second, distances, 32);
      return built;
    }();
    Codes(codes.first, codes.second);
  }

  void Dynamic() {
    static constexpr uint8_t kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    const int lengthCount = static_cast<int>(Bits(5)) + 257;
    const int distanceCount = static_cast<int>(Bits(5)) + 1;
    const int codeLengthCount = static_cast<int>(Bits(4)) + 4;
    if (!ok_ || lengthCount > kMaxLengthCodes || distanceCount > kMaxDistanceCodes) {
      ok_ = false;
      return;
    }
    uint8_t lengths[kMaxLengthCodes + kMaxDistanceCodes] = {};
    for (int i = 0; i < codeLengthCount; i++) lengths[kOrder[i]] = static_cast<uint8_t>(Bits(3));
    Huffman codeLengths;
    if (!ok_ || !Build(codeLengths, lengths, 19)) {
      ok_ = false;
      return;
    }
    std::memset(lengths, 0, sizeof lengths);
    for (int at = 0; at < lengthCount + distanceCount;) {
      const int symbol = Decode(codeLengths);
      if (!ok_ || symbol < 0) {
        ok_ = false;
        return;
      }
      if (symbol < 16) {
        lengths[at++] = static_cast<uint8_t>(symbol);
        continue;
      }
      uint8_t value = 0;
      int repeat;
      if (symbol == 16) {
        if (at == 0) {
          ok_ = false;
          return;
        }
        value = lengths[at - 1];
        repeat = 3 + static_cast<int>(Bits(2));
      } else if (symbol == 17) {
        repeat = 3 + static_cast<int>(Bits(3));
      } else {
        repeat = 11 + static_cast<int>(Bits(7));
      }
      if (!ok_ || at + repeat > lengthCount + distanceCount) {
        ok_ = false;
        return;
      }
      while (repeat-- > 0) lengths[at++] = value;
    }
    if (lengths[256] == 0) {  // no end-of-block code: the block could never end
      ok_ = false;
      return;
    }
    Huffman lengthCode, distanceCode;
    if (!Build(lengthCode, lengths, lengthCount) || !Build(distanceCode, lengths + lengthCount, distanceCount)) {
      ok_ = false;
      return;
    }
    Codes(lengthCode, distanceCode);
  }

  uint32_t Adler32() const {
    uint32_t a = 1, b = 0;
    size_t i = 0;
    while (i < out_.size()) {
      // 5552 bytes keep b below 2^32 before the modulo (zlib's NMAX).
      const size_t end = i + 5552 < out_.size() ? i + 5552 : out_.size();
      for (; i < end; i++) {
        a += out_[i];
        b += a;
      }
      a %= 65521;
      b %= 65521;
    }
    return (b << 16) | a;
  }

  const uint8_t* in_;
  size_t size_;
  size_t pos_ = 0;
  uint64_t bitBuffer_ = 0;
  int bitCount_ = 0;
  bool ok_ = true;
  size_t expected_;
  std::vector<uint8_t> out_;
};

}  // namespace

std::vector<uint8_t> InflateZlib(const uint8_t* in, size_t size, size_t expected) {
  return Inflater(in, size, expected).Run();
}

}  // namespace elf
}  // namespace iokitsnap
