// A minimal JSON value, parser and writer for the harness: the fake registry comes
// from JSON taken from real ioreg captures, and the sampled records go back as JSON.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace fake {

struct Json {
  enum class Kind { Null, Bool, Number, String, Array, Object } kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  std::string text;                                   // String; Number: its literal text
  std::vector<Json> items;                            // Array
  std::vector<std::pair<std::string, Json>> members;  // Object, in input order

  const Json* Get(const std::string& key) const {
    for (const auto& m : members) if (m.first == key) return &m.second;
    return nullptr;
  }

  static Json Parse(const std::string& input) {
    size_t at = 0;
    Json value = ParseAt(input, at);
    SkipSpace(input, at);
    if (at != input.size()) throw std::runtime_error("json: trailing text at " + std::to_string(at));
    return value;
  }

 private:
  static void SkipSpace(const std::string& s, size_t& at) {
    while (at < s.size() && (s[at] == ' ' || s[at] == '\n' || s[at] == '\r' || s[at] == '\t')) ++at;
  }
  static void AppendUtf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }
  static std::string ParseString(const std::string& s, size_t& at) {
    std::string out;
    ++at;  // "
    while (at < s.size() && s[at] != '"') {
      char c = s[at++];
      if (c != '\\') {
        out += c;
        continue;
      }
      char e = s.at(at++);
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          uint32_t cp = std::stoul(s.substr(at, 4), nullptr, 16);
          at += 4;
          if (cp >= 0xd800 && cp < 0xdc00 && s.compare(at, 2, "\\u") == 0) {
            uint32_t low = std::stoul(s.substr(at + 2, 4), nullptr, 16);
            at += 6;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
          }
          AppendUtf8(out, cp);
          break;
        }
        default: out += e;
      }
    }
    ++at;
    return out;
  }
  static Json ParseAt(const std::string& s, size_t& at) {
    SkipSpace(s, at);
    if (at >= s.size()) throw std::runtime_error("json: unexpected end");
    Json v;
    char c = s[at];
    if (c == '{') {
      v.kind = Kind::Object;
      ++at;
      SkipSpace(s, at);
      if (s[at] == '}') return ++at, v;
      while (true) {
        SkipSpace(s, at);
        std::string key = ParseString(s, at);
        SkipSpace(s, at);
        ++at;  // :
        v.members.emplace_back(std::move(key), ParseAt(s, at));
        SkipSpace(s, at);
        if (s[at++] == '}') return v;
      }
    }
    if (c == '[') {
      v.kind = Kind::Array;
      ++at;
      SkipSpace(s, at);
      if (s[at] == ']') return ++at, v;
      while (true) {
        v.items.push_back(ParseAt(s, at));
        SkipSpace(s, at);
        if (s[at++] == ']') return v;
      }
    }
    if (c == '"') {
      v.kind = Kind::String;
      v.text = ParseString(s, at);
      return v;
    }
    if (s.compare(at, 4, "true") == 0) return at += 4, v.kind = Kind::Bool, v.boolean = true, v;
    if (s.compare(at, 5, "false") == 0) return at += 5, v.kind = Kind::Bool, v;
    if (s.compare(at, 4, "null") == 0) return at += 4, v;
    size_t end = at;
    while (end < s.size() && std::string("+-0123456789.eE").find(s[end]) != std::string::npos) ++end;
    v.kind = Kind::Number;
    v.text = s.substr(at, end - at);
    v.number = std::stod(v.text);
    at = end;
    return v;
  }
};

// JSON text of a string.
inline std::string Quote(const std::string& text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\u%04x", c);
      out += buffer;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace fake
