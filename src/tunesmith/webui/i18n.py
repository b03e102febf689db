"""The web UI's own words (tabs, buttons, status messages) in English and Chinese.

Only UI chrome lives here. Every config field's help text comes from the schema
(``tunesmith.config.field_help``), written once beside the field.
"""

from __future__ import annotations

LANGS = {"en": "English", "zh": "中文"}

TEXT: dict[str, tuple[str, str]] = {  # key: (English, Chinese)
    # page and tabs
    "title": ("tunesmith", "tunesmith"),
    "subtitle": ("Pick a model, a dataset and a method, press start, watch the loss, chat with the result, "
                 "export it. Every action shows the YAML and command it runs, for the CLI.",
                 "选择模型、数据和方法，点击开始，观察损失曲线，与训练结果对话并导出。每个操作都会显示所运行的 "
                 "YAML 配置和命令，方便转到命令行。"),
    "language": ("Language / 语言", "语言 / Language"),
    "tab_data": ("Data", "数据"),
    "tab_train": ("Train", "训练"),
    "tab_eval": ("Evaluate", "评估"),
    "tab_chat": ("Chat", "对话"),
    "tab_export": ("Export", "导出"),
    # config groups
    "group_model": ("Model", "模型"),
    "group_data": ("Data", "数据"),
    "group_finetune": ("Method (stage, LoRA)", "方法（阶段、LoRA）"),
    "group_train": ("Training hyper-parameters", "训练超参数"),
    "group_eval": ("Generation and scoring", "生成与评分"),
    "group_export": ("Export settings", "导出设置"),
    "group_serve": ("API server (tunesmith serve)", "API 服务（tunesmith serve）"),
    "empty_default": ("empty: the default (see the help above)", "留空：使用默认值（见上方说明）"),
    # data tab
    "dataset_dir": ("Dataset folder (with dataset_info.json)", "数据目录（含 dataset_info.json）"),
    "dataset_pick": ("Dataset (registry name or file)", "数据集（注册名称或文件）"),
    "upload": ("Upload a dataset file (JSON, JSONL, CSV, Parquet, TXT)",
               "上传数据文件（JSON、JSONL、CSV、Parquet、TXT）"),
    "preview": ("Preview", "预览"),
    "check": ("Check and statistics", "检查与统计"),
    "use_for_training": ("Use for training", "用于训练"),
    "records": ("Records", "样本"),
    "stats": ("Statistics", "统计"),
    "check_output": ("Check report", "检查报告"),
    "uploaded": ("Saved the upload as {path}.", "已将上传文件保存为 {path}。"),
    "previewing": ("{n} examples in {name} ({kinds}); showing the first {shown}.",
                   "{name} 共 {n} 条样本（{kinds}）；显示前 {shown} 条。"),
    "set_for_training": ("Train tab: dataset = {name}, dataset_dir = {dir}.",
                         "已设置训练页：dataset = {name}，dataset_dir = {dir}。"),
    "col_format": ("format", "格式"),
    "col_system": ("system", "系统提示"),
    "col_prompt": ("prompt (first user turn)", "提示（首轮用户输入）"),
    "col_answer": ("answer", "回答"),
    "col_rejected": ("rejected", "被拒回答"),
    "col_turns": ("turns", "轮数"),
    "col_images": ("images", "图片"),
    "stat_split": ("split", "数据"),
    "stat_format": ("format", "格式"),
    "stat_examples": ("examples", "样本数"),
    "stat_tokens": ("tokens min/mean/p95/max", "token 数 最小/平均/p95/最大"),
    "stat_loss_share": ("loss share", "计算损失的 token 占比"),
    "stat_over_cutoff": ("over cutoff_len", "超过 cutoff_len"),
    "stat_duplicates": ("duplicates", "重复"),
    "stat_distinct": ("distinct instr.", "不同指令数"),
    "stat_top_share": ("top instr. share", "最常见指令占比"),
    # train tab
    "config_file": ("YAML config to load", "要加载的 YAML 配置"),
    "upload_config": ("Upload a YAML", "上传 YAML"),
    "load": ("Load into the form", "加载到表单"),
    "loaded": ("Loaded {path}.", "已加载 {path}。"),
    "file_not_found": ("{path}: no such file.", "{path}：文件不存在。"),
    "start": ("Start training", "开始训练"),
    "stop": ("Stop (save checkpoint)", "停止（保存检查点）"),
    "force_stop": ("Force stop", "强制停止"),
    "advice_button": ("Get advice for this config", "获取此配置的建议"),
    "advice": ("Advice", "建议"),
    "apply_advice": ("Apply the recommended changes", "采用建议的修改"),
    "advice_changes": ("Recommended changes: {changes}", "建议修改：{changes}"),
    "advice_no_changes": ("No config change recommended.", "无需修改配置。"),
    "advice_applied": ("Applied: {changes}", "已采用：{changes}"),
    "advice_fine": ("fine as they are", "无需修改"),
    "command": ("Command it runs", "将运行的命令"),
    "yaml": ("Config it writes (YAML)", "将写入的配置（YAML）"),
    "problems": ("Fix before starting:", "开始前请修正："),
    "config_ok": ("Config is valid.", "配置有效。"),
    "status": ("Status", "状态"),
    "curve": ("Loss curve", "损失曲线"),
    "log": ("Live log", "实时日志"),
    "result": ("Result", "结果"),
    "no_job": ("No training job yet.", "还没有训练任务。"),
    "state_running": ("running", "运行中"),
    "state_stopping": ("stopping: finishing the step and saving a checkpoint",
                       "正在停止：完成当前步并保存检查点"),
    "state_finished": ("finished", "已完成"),
    "state_stopped": ("stopped", "已停止"),
    "state_failed": ("failed (see the log)", "失败（请查看日志）"),
    "state_lost": ("ended without recording how (the process is gone)", "已结束（进程已不存在，未记录结束方式）"),
    "state_broken": ("its job.json cannot be read (see the job's folder); delete the job to remove it",
                     "无法读取其 job.json（请查看任务目录）；删除该任务即可移除"),
    "job_line": ("Job {id}: {state} · step {step}/{max_steps} · loss {loss} · eval loss {eval_loss} · "
                 "{elapsed} s", "任务 {id}：{state} · 步数 {step}/{max_steps} · 损失 {loss} · 验证损失 {eval_loss} · "
                 "{elapsed} 秒"),
    "job_files": ("output_dir: {out} · config: {config}", "输出目录：{out} · 配置：{config}"),
    "started": ("Started job {id}.", "已启动任务 {id}。"),
    "after_training": ("training done; saving and scoring on the test split", "训练完成；正在保存并在测试集上评分"),
    "stop_sent": ("Stop requested: the run finishes its step, saves a checkpoint and ends.",
                  "已请求停止：完成当前步、保存检查点后结束。"),
    "checkpoints": ("Checkpoints kept: {names}", "保留的检查点：{names}"),
    "resume_hint": ("Resume with resume_from_checkpoint: last (same output_dir).",
                    "可设置 resume_from_checkpoint: last（同一 output_dir）继续训练。"),
    "summary_line": ("{steps} steps in {seconds} s · loss {first} → {final} · eval loss {eval_loss} · "
                     "{tps} tokens/s · peak memory {mem} MB",
                     "{steps} 步，用时 {seconds} 秒 · 损失 {first} → {final} · 验证损失 {eval_loss} · "
                     "{tps} tokens/秒 · 峰值内存 {mem} MB"),
    "base_vs_tuned": ("Held-out test split ({n} examples): base vs tuned",
                      "留出测试集（{n} 条）：基座 vs 微调"),
    "metric": ("metric", "指标"),
    "base": ("base", "基座"),
    "tuned": ("tuned", "微调后"),
    "diagnosis": ("Loss curve diagnosis", "训练曲线诊断"),
    "evidence": ("evidence", "依据"),
    "what_to_do": ("advice", "建议"),
    "chat_with_it": ("Chat with it", "与它对话"),
    "series_loss": ("loss", "训练损失"),
    "series_eval_loss": ("eval_loss", "验证损失"),
    "step": ("step", "步数"),
    "loss": ("loss", "损失"),
    # evaluate / export / advice commands
    "run_dir": ("Run folder (a training output_dir)", "训练结果目录（output_dir）"),
    "compare_dir": ("Compare with (optional: base, or another run folder)", "对比（可选：base 或另一个训练结果目录）"),
    "run_eval": ("Run evaluation", "运行评估"),
    "run_export": ("Export", "导出"),
    "output": ("Output", "输出"),
    "report": ("Report", "报告"),
    "unavailable": ("`tunesmith {command}` is not available in this version of tunesmith, so this part of "
                    "the UI cannot run yet.", "当前版本的 tunesmith 还没有 `tunesmith {command}` 命令，"
                    "此功能暂不可用。"),
    "running_cmd": ("Running: {command}", "正在运行：{command}"),
    "exit_code": ("Exited with code {code}.", "退出码 {code}。"),
    "serve_command": ("Serve the exported or tuned model with:", "用以下命令部署导出或微调后的模型："),
    # chat
    "chat_model_kind": ("Model", "模型"),
    "kind_base": ("base model", "基座模型"),
    "kind_adapter": ("base + adapter (a run folder)", "基座 + 适配器（训练结果目录）"),
    "kind_merged": ("merged / exported folder", "合并或导出后的目录"),
    "chat_model": ("Base or merged model", "基座或合并后的模型"),
    "chat_adapter": ("Adapter (run folder)", "适配器（训练结果目录）"),
    "load_model": ("Load model", "加载模型"),
    "model_loaded": ("Loaded {name} · template {template} · stops at {stops}",
                     "已加载 {name} · 模板 {template} · 停止符 {stops}"),
    "loading": ("Loading…", "加载中…"),
    "no_model": ("Load a model first.", "请先加载模型。"),
    "system_prompt": ("System prompt", "系统提示"),
    "message": ("Message", "消息"),
    "chat_image": ("Image (vision-language models)", "图片（视觉语言模型）"),
    "media_preview": ("Images of the previewed records", "预览样本中的图片"),
    "send": ("Send", "发送"),
    "clear": ("Clear", "清空"),
    "chatbot": ("Chat", "对话"),
    "error": ("Error", "错误"),
}


def t(key: str, lang: str = "en", **values: object) -> str:
    """The UI text for ``key`` in ``lang`` ('en' or 'zh'), with ``{placeholders}`` filled."""
    en, zh = TEXT[key]
    text = zh if lang == "zh" else en
    return text.format(**values) if values else text
