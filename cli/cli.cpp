#include "cli/cli.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace tlc::cli {
namespace {

// The action chosen by the last parse (a process runs one command).
std::function<int()> &chosenAction() {
  static std::function<int()> action;
  return action;
}

std::string commandPath(const CLI::App *app) {
  std::string path;
  for (; app; app = app->get_parent())
    path = app->get_name() + (path.empty() ? "" : " " + path);
  return path;
}

// The deepest subcommand the command line selected (the tool itself if none).
CLI::App *selected(CLI::App &tool) {
  CLI::App *app = &tool;
  for (;;) {
    std::vector<CLI::App *> subs = app->get_subcommands([](CLI::App *) { return true; });
    CLI::App *next = nullptr;
    for (CLI::App *s : subs)
      if (s->parsed()) next = s;
    if (!next) return app;
    app = next;
  }
}

// CLI11 takes the last of a repeated single-valued option; we refuse it.
// Options marked repeatable() (policy TakeAll) and options that take several
// values at once (where count() can't tell occurrences apart) are left be.
void refuseRepeats(const CLI::App &command) {
  for (const CLI::Option *o : command.get_options()) {
    if (o->get_multi_option_policy() != CLI::MultiOptionPolicy::TakeLast) continue;
    if (o->get_expected_max() <= 1 && o->count() > 1)
      throw CLI::ArgumentMismatch(o->get_name() + " given " + std::to_string(o->count()) +
                                  " times; give it once");
  }
}

std::string trim(const std::string &s) {
  size_t b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Types a scalar written on a command line or in TOML. Returns false when a
// number-looking value does not fit (the caller names the key).
bool typedScalar(const std::string &text, nlohmann::json &out) {
  if (text == "true" || text == "false") {
    out = text == "true";
    return true;
  }
  std::string digits;
  for (char c : text)
    if (c != '_') digits += c;
  const char *s = digits.c_str();
  char *end = nullptr;
  // Decimal only: no hex, inf or nan (strtod would take them).
  bool looksNumeric = !digits.empty() &&
                      digits.find_first_not_of("0123456789+-.eE") == std::string::npos &&
                      (std::isdigit(static_cast<unsigned char>(s[0])) ||
                       ((s[0] == '-' || s[0] == '+' || s[0] == '.') && digits.size() > 1));
  if (looksNumeric) {
    errno = 0;
    long long i = std::strtoll(s, &end, 10);
    if (*end == '\0') {
      if (errno == ERANGE) return false;
      out = static_cast<int64_t>(i);
      return true;
    }
    errno = 0;
    double d = std::strtod(s, &end);
    if (*end == '\0') {
      if (errno == ERANGE || !std::isfinite(d)) return false;
      out = d;
      return true;
    }
  }
  out = text;
  return true;
}

[[noreturn]] void configError(const std::string &path, int line, const std::string &why) {
  throw UsageError(path + ":" + std::to_string(line) + ": " + why);
}

// One TOML value (no inline tables, no multi-line strings); `pos` advances.
nlohmann::json tomlValue(const std::string &path, int line, const std::string &text, size_t &pos,
                         const std::string &key) {
  auto fail = [&](const std::string &why) { configError(path, line, "key '" + key + "': " + why); };
  if (pos >= text.size()) fail("missing value");
  char c = text[pos];
  if (c == '"' || c == '\'') {
    if (text.compare(pos, 3, std::string(3, c)) == 0) fail("multi-line strings are not supported");
    std::string value;
    for (++pos; pos < text.size() && text[pos] != c; ++pos) {
      if (c == '"' && text[pos] == '\\' && pos + 1 < text.size()) {
        char e = text[++pos];
        if (e == 'n') value += '\n';
        else if (e == 't') value += '\t';
        else if (e == '"' || e == '\\') value += e;
        else fail(std::string("unsupported escape \\") + e);
      } else {
        value += text[pos];
      }
    }
    if (pos >= text.size()) fail("unterminated string");
    ++pos;
    return value;
  }
  if (c == '[') {
    nlohmann::json array = nlohmann::json::array();
    ++pos;
    for (;;) {
      while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) ++pos;
      if (pos < text.size() && text[pos] == ']') {
        ++pos;
        return array;
      }
      if (pos < text.size() && text[pos] == '[') fail("nested arrays are not supported");
      array.push_back(tomlValue(path, line, text, pos, key));
      while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) ++pos;
      if (pos < text.size() && text[pos] == ',') ++pos;
      else if (pos >= text.size() || text[pos] != ']')
        fail("an array must be on one line, its items separated by commas");
    }
  }
  if (c == '{') fail("inline tables are not supported (use a [section])");
  size_t end = text.find_first_of(",] \t#", pos);
  std::string word = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
  pos += word.size();
  nlohmann::json value;
  if (!typedScalar(word, value)) fail("number '" + word + "' is out of range");
  if (value.is_string()) fail("'" + word + "' is not a string (quote it), number or boolean");
  return value;
}

nlohmann::json parseToml(const std::string &path, const std::string &content, std::map<std::string, int> &definedAt) {
  nlohmann::json out = nlohmann::json::object();
  std::istringstream in(content);
  std::string raw, section;
  std::map<std::string, int> sectionAt;
  for (int line = 1; std::getline(in, raw); ++line) {
    std::string text = trim(raw);
    if (text.empty() || text[0] == '#') continue;
    if (text[0] == '[') {
      if (text.compare(0, 2, "[[") == 0) configError(path, line, "arrays of tables are not supported");
      size_t close = text.find(']');
      std::string rest = close == std::string::npos ? "" : trim(text.substr(close + 1));
      section = close == std::string::npos ? "" : trim(text.substr(1, close - 1));
      if (section.empty() || (!rest.empty() && rest[0] != '#'))
        configError(path, line, "malformed section header '" + text + "'");
      auto [it, fresh] = sectionAt.emplace(section, line);
      if (!fresh)
        configError(path, line, "table [" + section + "] given twice (first on line " + std::to_string(it->second) + ")");
      continue;
    }
    size_t eq = text.find('=');
    if (eq == std::string::npos) configError(path, line, "expected key = value, got '" + text + "'");
    std::string key = trim(text.substr(0, eq));
    if (key.size() >= 2 && (key[0] == '"' || key[0] == '\'') && key.back() == key[0])
      key = key.substr(1, key.size() - 2);
    if (key.empty()) configError(path, line, "empty key");
    if (!section.empty()) key = section + "." + key;
    std::string valueText = trim(text.substr(eq + 1));
    size_t pos = 0;
    nlohmann::json value = tomlValue(path, line, valueText, pos, key);
    std::string rest = trim(valueText.substr(pos));
    if (!rest.empty() && rest[0] != '#')
      configError(path, line, "key '" + key + "': unexpected '" + rest + "' after the value");
    auto [it, fresh] = definedAt.emplace(key, line);
    if (!fresh)
      configError(path, line, "key '" + key + "' given twice (first on line " +
                                  std::to_string(it->second) + ")");
    out[key] = value;
  }
  return out;
}

void flattenJson(const nlohmann::json &j, const std::string &prefix, nlohmann::json &out) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
    if (it->is_object()) flattenJson(*it, key, out);
    else out[key] = *it;
  }
}

}  // namespace

void configureTool(CLI::App &tool) {
  tool.require_subcommand(1);
  tool.option_defaults()->always_capture_default()->multi_option_policy(
      CLI::MultiOptionPolicy::TakeLast);
  tool.get_formatter()->column_width(34);
  tool.footer("Exit status: 0 success (and --help), 1 failure, 2 usage error.\n"
              "Run '" + tool.get_name() + " COMMAND --help' for a command's options.");
}

CLI::Option *repeatable(CLI::Option *option) {
  return option->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll)
      ->default_str("");  // not "=[]" in --help
}

CLI::Validator integerIn(long long lo, long long hi) {
  return CLI::Validator(
      [lo, hi](std::string &value) -> std::string {
        char *end = nullptr;
        errno = 0;
        long long v = std::strtoll(value.c_str(), &end, 10);
        if (value.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi)
          return "must be in " + std::to_string(lo) + ".." + std::to_string(hi) + ", got " + value;
        return "";
      },
      "", "integer range");
}

void setAction(CLI::App &command, std::function<int()> action) {
  command.final_callback([&command, action = std::move(action)] {
    refuseRepeats(command);
    chosenAction() = action;
  });
}

int run(CLI::App &tool, int argc, char **argv) {
  const std::string name = tool.get_name();
  chosenAction() = nullptr;
  try {
    bool known = false;
    std::string names;
    for (const CLI::App *s : tool.get_subcommands([](const CLI::App *) { return true; })) {
      known |= argc >= 2 && s->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + s->get_name();
    }
    if (argc < 2) {
      std::fprintf(stderr, "%s: a command is required (commands: %s)\nRun '%s --help' for more.\n",
                   name.c_str(), names.c_str(), name.c_str());
      return kExitUsage;
    }
    if (!known && argv[1][0] != '-') {
      std::fprintf(stderr, "%s: unknown command '%s' (commands: %s)\n", name.c_str(), argv[1],
                   names.c_str());
      return kExitUsage;
    }
    tool.parse(argc, argv);
  } catch (const CLI::Success &) {  // --help
    std::fputs(tool.help().c_str(), stdout);
    return kExitOk;
  } catch (const CLI::ParseError &e) {
    CLI::App *where = selected(tool);
    // --help wins over any other error on the line (CLI11 checks values first).
    for (int i = 1; i < argc && std::strcmp(argv[i], "--") != 0; ++i)
      if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
        std::fputs(where->help(commandPath(where->get_parent())).c_str(), stdout);
        return kExitOk;
      }
    std::string path = commandPath(where);
    std::string prefix = name + ":" + (where == &tool ? "" : path.substr(name.size()) + ":");
    std::fprintf(stderr, "%s %s\nRun '%s --help' for the options.\n", prefix.c_str(), e.what(),
                 path.c_str());
    return kExitUsage;
  } catch (const std::exception &e) {  // thrown by an option's check
    std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
    return kExitUsage;
  }
  if (!chosenAction()) return kExitUsage;  // unreachable: a subcommand is required
  try {
    return chosenAction()();
  } catch (const UsageError &e) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
    return kExitUsage;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
    return kExitFailure;
  } catch (const std::string &message) {  // the tlc driver's own failures
    std::fprintf(stderr, "%s: %s\n", name.c_str(), message.c_str());
    return kExitFailure;
  }
}

nlohmann::json parseSetList(const std::vector<std::string> &items, const std::string &option) {
  nlohmann::json out = nlohmann::json::object();
  for (const std::string &occurrence : items) {
    std::stringstream ss(occurrence);
    for (std::string item; std::getline(ss, item, ',');) {
      item = trim(item);
      if (item.empty()) continue;
      size_t eq = item.find('=');
      std::string key = trim(item.substr(0, eq));
      std::string text = eq == std::string::npos ? "" : trim(item.substr(eq + 1));
      if (eq == std::string::npos || key.empty() || text.empty())
        throw UsageError(option + ": '" + item + "' is not of the form key=value");
      if (out.contains(key)) throw UsageError(option + ": key '" + key + "' given twice");
      nlohmann::json value;
      if (!typedScalar(text, value))
        throw UsageError(option + ": " + key + "=" + text + " is out of range");
      out[key] = value;
    }
  }
  return out;
}

nlohmann::json loadConfigFile(const std::string &path, std::map<std::string, int> *lines) {
  // Only a plain, small text file: a directory reads as empty, /dev/zero
  // never ends, and a binary file's bytes do not belong in a message.
  constexpr std::uintmax_t kMaxBytes = 16u << 20;
  std::error_code ec;
  std::filesystem::file_status status = std::filesystem::status(path, ec);
  if (ec) throw UsageError(path + ": cannot open config file: " + ec.message());
  if (std::filesystem::is_directory(status))
    throw UsageError(path + ": given a directory, expected a config file (JSON or TOML)");
  if (!std::filesystem::is_regular_file(status))
    throw UsageError(path + ": not a regular file, expected a config file (JSON or TOML)");
  if (std::filesystem::file_size(path, ec) > kMaxBytes)
    throw UsageError(path + ": larger than 16 MiB: not a config file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UsageError(path + ": cannot open config file: " + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  std::string content = ss.str();
  if (content.compare(0, 3, "\xEF\xBB\xBF") == 0) content.erase(0, 3);  // a UTF-8 byte order mark
  for (size_t i = 0; i < content.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(content[i]);
    if (c < 0x20 && c != '\n' && c != '\r' && c != '\t') {
      size_t line = 1 + std::count(content.begin(), content.begin() + static_cast<std::ptrdiff_t>(i), '\n');
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02x", c);
      throw UsageError(path + ":" + std::to_string(line) + ": control byte " + byte +
                       ": given binary data, expected a config file (JSON or TOML)");
    }
  }
  size_t first = content.find_first_not_of(" \t\r\n");
  bool jsonName = path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
  if (jsonName || (first != std::string::npos && content[first] == '{')) {
    nlohmann::json j;
    // nlohmann keeps the last of duplicate keys: refuse them instead.
    std::vector<std::vector<std::string>> keysPerObject;
    auto refuseDuplicates = [&](int, nlohmann::json::parse_event_t event, nlohmann::json &parsed) {
      using Event = nlohmann::json::parse_event_t;
      if (event == Event::object_start) keysPerObject.emplace_back();
      if (event == Event::object_end && !keysPerObject.empty()) keysPerObject.pop_back();
      if (event == Event::key && !keysPerObject.empty()) {
        std::vector<std::string> &seen = keysPerObject.back();
        std::string key = parsed.get<std::string>();
        if (std::find(seen.begin(), seen.end(), key) != seen.end())
          throw UsageError(path + ": key '" + key + "' given twice");
        seen.push_back(key);
      }
      return true;
    };
    try {
      j = nlohmann::json::parse(content, refuseDuplicates);
    } catch (const nlohmann::json::parse_error &e) {
      // byte offset -> line number
      size_t line = 1 + std::count(content.begin(),
                                   content.begin() + std::min(e.byte, content.size()), '\n');
      throw UsageError(path + ":" + std::to_string(line) + ": invalid JSON: " + e.what());
    }
    if (!j.is_object()) throw UsageError(path + ": expected a JSON object of keys and values");
    nlohmann::json out = nlohmann::json::object();
    flattenJson(j, "", out);
    return out;
  }
  std::map<std::string, int> definedAt;
  nlohmann::json out = parseToml(path, content, definedAt);
  if (lines) *lines = std::move(definedAt);
  return out;
}

void rejectUnknownKeys(const nlohmann::json &keyValues, const std::vector<std::string> &allowed,
                       const std::string &where) {
  for (auto it = keyValues.begin(); it != keyValues.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) continue;
    std::string known;
    for (const std::string &k : allowed) known += (known.empty() ? "" : ", ") + k;
    throw UsageError(where + ": unknown key '" + it.key() + "' (known: " + known + ")");
  }
}

}  // namespace tlc::cli
