#!/usr/bin/env python3
"""gen_corpus.py OUT_DIR N_FILES [KB_PER_FILE] — a deterministic synthetic
corpus of mixed Chinese/English Markdown files (~100 KB each by default) for
the ingestion benchmark: headings, paragraphs of sentences mixing a Chinese
vocabulary (common two/three-character words) and English words."""
import os, random, sys

out, n = sys.argv[1], int(sys.argv[2])
kb = int(sys.argv[3]) if len(sys.argv) > 3 else 100
rng = random.Random(20261122)
zh = ("知识 管理 系统 文档 检索 企业 员工 数据 安全 权限 审批 流程 报销 财务 部门 会议 项目 客户 合同 "
      "服务器 数据库 网络 配置 部署 版本 更新 用户 密码 账号 培训 考勤 休假 政策 规定 标准 质量 测试 "
      "产品 研发 市场 销售 运营 支持 工单 问题 解决 方案 技术 架构 性能 监控 日志 备份 恢复 迁移").split()
en = ("the of and to in is that for it as with was on be by this are from or an which at have not "
      "system document search index query vector database server cluster backup policy employee access "
      "permission report budget project customer contract release version update deploy network config").split()

def sentence():
    if rng.random() < 0.5:
        return "".join(rng.choice(zh) for _ in range(rng.randint(8, 20))) + rng.choice("。；！？")
    w = [rng.choice(en) for _ in range(rng.randint(8, 20))]
    return " ".join(w).capitalize() + "."

os.makedirs(out, exist_ok=True)
for i in range(n):
    parts, size, h = [], 0, 0
    parts.append(f"# 文档 {i} Document {i}\n\n")
    while size < kb * 1024:
        if rng.random() < 0.08:
            h += 1
            parts.append(f"## 第{h}节 Section {h}\n\n")
        p = " ".join(sentence() for _ in range(rng.randint(3, 8))) + "\n\n"
        parts.append(p)
        size += len(p.encode())
    with open(os.path.join(out, f"doc{i:05d}.md"), "w", encoding="utf-8") as f:
        f.write("".join(parts))
