// The command-line layer (cli/cli.h) and the shared input checks
// (cli/inputs.h): exit codes, --set lists, config files, file kinds.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>

#include "cli/cli.h"
#include "cli/inputs.h"
#include "formats/tokens.h"

namespace tlc {
namespace {

std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "cli_test_" + std::to_string(getpid()) + "_" + name;
}

std::string writeFile(const std::string &name, const std::string &content) {
  std::string path = tempPath(name);
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// Runs a toy tool: `toy do [--name N] [--twice] [--list V...] [--a | --b]`.
struct Toy {
  std::string name = "x";
  std::vector<std::string> list, vec;
  bool a = false, b = false;
  std::function<int()> work = [] { return 0; };

  int run(std::vector<std::string> args, std::string *err = nullptr) {
    CLI::App toy{"toy", "toy"};
    cli::configureTool(toy);
    CLI::App *sub = toy.add_subcommand("do", "do it");
    sub->add_option("--name", name, "a name")->required();
    cli::repeatable(sub->add_option("--list", list, "repeatable"));
    sub->add_option("--vec", vec, "a vector, not repeatable");
    CLI::Option *optA = sub->add_flag("--a", a, "a");
    sub->add_flag("--b", b, "b")->excludes(optA);
    cli::setAction(*sub, [this] { return work(); });
    args.insert(args.begin(), "toy");
    std::vector<char *> argv;
    for (std::string &s : args) argv.push_back(s.data());
    ::testing::internal::CaptureStderr();
    ::testing::internal::CaptureStdout();
    int rc = cli::run(toy, static_cast<int>(argv.size()), argv.data());
    std::string e = ::testing::internal::GetCapturedStderr();
    ::testing::internal::GetCapturedStdout();
    if (err) *err = e;
    return rc;
  }
};

TEST(Cli, ExitCodesFollowTheConventions) {
  std::string err;
  EXPECT_EQ(Toy().run({"--help"}), 0);
  EXPECT_EQ(Toy().run({"do", "--help"}), 0);
  EXPECT_EQ(Toy().run({"do", "--name", "n"}), 0);
  EXPECT_EQ(Toy().run({}, &err), 2);
  EXPECT_NE(err.find("toy: a command is required (commands: do)"), std::string::npos) << err;
  EXPECT_EQ(Toy().run({"undo"}, &err), 2);
  EXPECT_NE(err.find("toy: unknown command 'undo'"), std::string::npos) << err;
  EXPECT_EQ(Toy().run({"do"}, &err), 2);
  EXPECT_NE(err.find("toy: do: --name is required"), std::string::npos) << err;
  EXPECT_EQ(Toy().run({"do", "--name", "a", "--name", "b"}, &err), 2);
  EXPECT_NE(err.find("toy: do: --name given 2 times; give it once"), std::string::npos) << err;
  EXPECT_EQ(Toy().run({"do", "--name", "a", "--a", "--a"}, &err), 2);
  EXPECT_NE(err.find("--a given 2 times"), std::string::npos) << err;
  EXPECT_EQ(Toy().run({"do", "--name", "a", "--a", "--b"}, &err), 2);
  EXPECT_NE(err.find("--a excludes --b"), std::string::npos) << err;
  EXPECT_EQ(Toy().run({"do", "--name", "a", "extra"}, &err), 2);
  EXPECT_NE(err.find("not expected: extra"), std::string::npos) << err;
  // A vector option may repeat.
  Toy repeat;
  EXPECT_EQ(repeat.run({"do", "--name", "a", "--list", "1", "--list", "2"}), 0);
  EXPECT_EQ(repeat.list, (std::vector<std::string>{"1", "2"}));
  // ...one value each time, so it never swallows a positional.
  EXPECT_EQ(Toy().run({"do", "--list", "1", "extra", "--name", "a"}, &err), 2);
  EXPECT_NE(err.find("not expected: extra"), std::string::npos) << err;
  // Other vector options take several values at once.
  Toy vector;
  EXPECT_EQ(vector.run({"do", "--name", "a", "--vec", "1", "2"}), 0);
  EXPECT_EQ(vector.vec, (std::vector<std::string>{"1", "2"}));
}

TEST(Cli, ActionsGiveTheExitCode) {
  Toy toy;
  std::string err;
  toy.work = [] { return 7; };
  EXPECT_EQ(toy.run({"do", "--name", "a"}), 7);
  toy.work = []() -> int { throw std::runtime_error("broken input"); };
  EXPECT_EQ(toy.run({"do", "--name", "a"}, &err), 1);
  EXPECT_EQ(err, "toy: broken input\n");
  toy.work = []() -> int { throw cli::UsageError("--set: bad"); };
  EXPECT_EQ(toy.run({"do", "--name", "a"}, &err), 2);
  EXPECT_EQ(err, "toy: --set: bad\n");
  // The action never runs when parsing fails.
  bool ran = false;
  toy.work = [&] { ran = true; return 0; };
  EXPECT_EQ(toy.run({"do"}), 2);
  EXPECT_FALSE(ran);
}

TEST(Cli, SetListsAreTypedAndRefuseRepeatedKeys) {
  nlohmann::json kv = cli::parseSetList({"lr=3e-4, steps=100", "name=run1,resume=true,neg=-2"});
  EXPECT_EQ(kv["lr"], 3e-4);
  EXPECT_TRUE(kv["steps"].is_number_integer());
  EXPECT_EQ(kv["steps"], 100);
  EXPECT_EQ(kv["name"], "run1");
  EXPECT_EQ(kv["resume"], true);
  EXPECT_EQ(kv["neg"], -2);
  nlohmann::json odd = cli::parseSetList({"h=0x10,i=inf,n=-nan,d=.5,v=1.2.3"});
  EXPECT_EQ(odd["h"], "0x10");
  EXPECT_EQ(odd["i"], "inf");
  EXPECT_EQ(odd["n"], "-nan");
  EXPECT_EQ(odd["d"], 0.5);
  EXPECT_EQ(odd["v"], "1.2.3");
  auto message = [](std::vector<std::string> items) {
    try {
      cli::parseSetList(items, "--set");
    } catch (const cli::UsageError &e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_EQ(message({"a=1", "a=2"}), "--set: key 'a' given twice");
  EXPECT_EQ(message({"a=1,a=2"}), "--set: key 'a' given twice");
  EXPECT_EQ(message({"a"}), "--set: 'a' is not of the form key=value");
  EXPECT_EQ(message({"=1"}), "--set: '=1' is not of the form key=value");
  EXPECT_EQ(message({"a="}), "--set: 'a=' is not of the form key=value");
  EXPECT_EQ(message({"a=99999999999999999999"}), "--set: a=99999999999999999999 is out of range");
  EXPECT_EQ(cli::parseSetList({",,"}).size(), 0u);
}

TEST(Cli, RejectUnknownKeysNamesKeyAndAllowed) {
  nlohmann::json kv = {{"lr", 1}, {"lrr", 2}};
  try {
    cli::rejectUnknownKeys(kv, {"lr", "steps"}, "run.toml");
    FAIL() << "no error";
  } catch (const cli::UsageError &e) {
    EXPECT_STREQ(e.what(), "run.toml: unknown key 'lrr' (known: lr, steps)");
  }
  EXPECT_NO_THROW(cli::rejectUnknownKeys({{"steps", 1}}, {"lr", "steps"}, "x"));
}

TEST(Cli, TomlSubsetFlattensSections) {
  std::string path = writeFile("ok.toml",
                               "# a training run\n"
                               "name = \"tiny # not a comment\"  # a comment\n"
                               "steps = 1_000\n"
                               "lr = 4e-4\n"
                               "resume = false\n"
                               "path = 'C:\\raw'\n"
                               "\n"
                               "[optim]\n"
                               "betas = [0.9, 0.95]\n"
                               "\"eps\" = 1e-8\n"
                               "[data]\n"
                               "files = [\"a.bin\", \"b,c.bin\"]\n");
  nlohmann::json kv = cli::loadConfigFile(path);
  EXPECT_EQ(kv["name"], "tiny # not a comment");
  EXPECT_EQ(kv["steps"], 1000);
  EXPECT_EQ(kv["lr"], 4e-4);
  EXPECT_EQ(kv["resume"], false);
  EXPECT_EQ(kv["path"], "C:\\raw");
  EXPECT_EQ(kv["optim.betas"], nlohmann::json::array({0.9, 0.95}));
  EXPECT_EQ(kv["optim.eps"], 1e-8);
  EXPECT_EQ(kv["data.files"], nlohmann::json::array({"a.bin", "b,c.bin"}));
  EXPECT_EQ(kv.size(), 8u);
  std::remove(path.c_str());
}

TEST(Cli, ConfigErrorsNameFileLineAndKey) {
  auto message = [](const std::string &name, const std::string &content) {
    std::string path = writeFile(name, content);
    std::string what = "no error";
    try {
      cli::loadConfigFile(path);
    } catch (const cli::UsageError &e) {
      what = e.what();
      what.replace(0, path.size(), "FILE");
    }
    std::remove(path.c_str());
    return what;
  };
  EXPECT_EQ(message("dup.toml", "a = 1\n\nb = 2\na = 3\n"),
            "FILE:4: key 'a' given twice (first on line 1)");
  EXPECT_EQ(message("bare.toml", "a = 1\nname = tiny\n"),
            "FILE:2: key 'name': 'tiny' is not a string (quote it), number or boolean");
  EXPECT_EQ(message("table.toml", "[x]\nt = { a = 1 }\n"),
            "FILE:2: key 'x.t': inline tables are not supported (use a [section])");
  EXPECT_EQ(message("open.toml", "s = \"abc\n"), "FILE:1: key 's': unterminated string");
  EXPECT_EQ(message("noeq.toml", "a = 1\njust words\n"),
            "FILE:2: expected key = value, got 'just words'");
  EXPECT_EQ(message("empty.toml", "a =\n"), "FILE:1: key 'a': missing value");
  EXPECT_EQ(message("trail.toml", "a = 1 2\n"), "FILE:1: key 'a': unexpected '2' after the value");
  EXPECT_EQ(message("aot.toml", "[[runs]]\n"), "FILE:1: arrays of tables are not supported");
  EXPECT_EQ(message("big.toml", "a = 99999999999999999999\n"),
            "FILE:1: key 'a': number '99999999999999999999' is out of range");
  EXPECT_EQ(message("bad.json", "{\n  \"a\": 1,\n  \"b\": \n}\n").substr(0, 22),
            "FILE:4: invalid JSON: ");
  EXPECT_EQ(message("list.json", "[1, 2]"), "FILE: expected a JSON object of keys and values");
  EXPECT_EQ(message("dup.json", R"({"a": {"b": 1, "b": 2}})"), "FILE: key 'b' given twice");
  EXPECT_EQ(message("sibling.json", R"({"a": {"b": 1}, "c": {"b": 2}})"), "no error");  // different objects
  EXPECT_EQ(message("tables.toml", "[x]\na = 1\n[y]\n[x]\nb = 2\n"), "FILE:4: table [x] given twice (first on line 1)");
  EXPECT_EQ(message("binary.toml", std::string("a = 1\n\0\x01", 8)),
            "FILE:2: control byte 0x00: given binary data, expected a config file (JSON or TOML)");
  EXPECT_EQ(message("bom.toml", "\xEF\xBB\xBF" "a = 1\n"), "no error");
  for (const std::string &special : {::testing::TempDir(), std::string("/dev/null")}) {
    try {
      cli::loadConfigFile(special);
      ADD_FAILURE() << special << ": no error";
    } catch (const cli::UsageError &e) {
      EXPECT_NE(std::string(e.what()).find("expected a config file (JSON or TOML)"), std::string::npos) << e.what();
    }
  }
  std::string missing = tempPath("missing.toml");
  try {
    cli::loadConfigFile(missing);
    FAIL() << "no error";
  } catch (const cli::UsageError &e) {
    EXPECT_EQ(std::string(e.what()), missing + ": cannot open config file: No such file or directory");
  }
}

TEST(Cli, JsonConfigIsFlattenedLikeToml) {
  std::string path = writeFile("run.json", R"({"steps": 10, "optim": {"lr": 0.001, "betas": [0.9, 0.95]}})");
  nlohmann::json kv = cli::loadConfigFile(path);
  EXPECT_EQ(kv, (nlohmann::json{{"steps", 10}, {"optim.lr", 0.001}, {"optim.betas", {0.9, 0.95}}}));
  std::remove(path.c_str());
}

TEST(Inputs, FilesAreRecognisedByContent) {
  using inputs::FileKind;
  std::string shard = tempPath("shard.bin");
  tokens::writeShard(shard, {1, 2, 3});
  std::string tlx = writeFile("a.tlx", std::string("TLX\x01", 4) + std::string(20, '\0'));
  std::string text = writeFile("m.mlir", "func.func @f() {\n  return\n}\n");
  std::string header = "{\"__metadata__\":{}}";
  uint64_t n = header.size();
  std::string st = writeFile("w.safetensors", std::string(reinterpret_cast<char *>(&n), 8) + header);
  std::string empty = writeFile("empty", "");
  std::string binary = writeFile("bin", std::string("\x7f" "ELF\0\0\0", 7));
  EXPECT_EQ(inputs::detect(shard), FileKind::TokenShard);
  EXPECT_EQ(inputs::detect(tlx), FileKind::Artifact);
  EXPECT_EQ(inputs::detect(text), FileKind::Text);
  EXPECT_EQ(inputs::detect(st), FileKind::Safetensors);
  EXPECT_EQ(inputs::detect(empty), FileKind::Empty);
  EXPECT_EQ(inputs::detect(binary), FileKind::Binary);
  EXPECT_EQ(inputs::detect(::testing::TempDir()), FileKind::Directory);
  EXPECT_EQ(inputs::detect(tempPath("none")), FileKind::Missing);
  try {
    inputs::expectKind(shard, FileKind::Artifact, "MODEL");
    FAIL() << "no error";
  } catch (const inputs::Error &e) {
    EXPECT_EQ(std::string(e.what()),
              "MODEL " + shard + ": given an llm.c token shard, expected a .tlx artifact (from tlc compile)");
  }
  EXPECT_NO_THROW(inputs::expectKind("-", FileKind::Text, "FILE"));
  for (const std::string &p : {shard, tlx, text, st, empty, binary}) std::remove(p.c_str());
}

TEST(Inputs, OutputPathsAreCheckedWithoutCreatingThem) {
  std::string fresh = tempPath("out.safetensors");
  EXPECT_NO_THROW(inputs::expectWritable(fresh, "-o"));
  EXPECT_EQ(inputs::detect(fresh), inputs::FileKind::Missing);  // nothing created
  EXPECT_NO_THROW(inputs::expectWritable("-", "-o"));
  EXPECT_NO_THROW(inputs::expectWritable("/dev/null", "-o"));
  EXPECT_THROW(inputs::expectWritable(tempPath("no/such/dir/x"), "-o"), inputs::Error);
  EXPECT_THROW(inputs::expectWritable(::testing::TempDir(), "-o"), inputs::Error);
  EXPECT_NO_THROW(inputs::expectWritableDirectory(tempPath("new/nested"), "--dump-kernels"));
  std::string file = writeFile("plain", "x");
  EXPECT_THROW(inputs::expectWritableDirectory(file, "--dump-kernels"), inputs::Error);
  EXPECT_THROW(inputs::expectWritableDirectory(file + "/sub", "--dump-kernels"), inputs::Error);
  std::remove(file.c_str());
}

TEST(Inputs, TokenIdsAreCheckedAsInputsAndTargets) {
  // B=2, T=3: each micro-batch reads 7 tokens; 2 micro-batches read 13.
  std::mt19937 rng(7);
  std::vector<uint16_t> tokens(14);
  for (auto &t : tokens) t = static_cast<uint16_t>(rng() % 50);
  EXPECT_NO_THROW(inputs::checkTokenIds("t.bin", tokens, 2, 2, 3, 50));
  auto role = [&](size_t position) {
    std::vector<uint16_t> bad = tokens;
    bad[position] = 50;
    try {
      inputs::checkTokenIds("t.bin", bad, 2, 2, 3, 50);
    } catch (const inputs::Error &e) {
      std::string what = e.what();
      return what.substr(what.find("(used as ") + 9);
    }
    return std::string("no error");
  };
  EXPECT_EQ(role(0), "an input of micro-batch 0)");
  EXPECT_EQ(role(4), "an input and a target of micro-batch 0)");
  EXPECT_EQ(role(6), "an input of micro-batch 1 and a target of micro-batch 0)");
  EXPECT_EQ(role(12), "the last target, of micro-batch 1)");
  EXPECT_EQ(role(13), "no error");  // never read
  EXPECT_NO_THROW(inputs::checkTokenIds("t.bin", tokens, 2, 2, 3, 0));  // vocab unknown
}

}  // namespace
}  // namespace tlc
