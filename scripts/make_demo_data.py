"""Writes the bundled demo data: Chinese reviews of electric heaters with aspect labels.

Written for this project (in the spirit of the TF1 original's heater reviews): each review joins
phrases about 0 to 3 aspects, positive or negative, with openers, connectors and closers. Some
phrasings are kept out of training so dev and test ask for some generalisation.

    python scripts/make_demo_data.py   # rewrites classifier_multi_label/demo_data/*.csv
"""

import csv
import os
import random

ASPECTS = {
    "制热效果": ["制热很快，开机两分钟就暖和了", "升温特别快，整个房间都热乎乎的", "制热效果一般，离远了就感觉不到热",
             "开了一个小时房间还是冷的", "加热很均匀，脚边也暖", "热得很快，冬天洗完澡出来不冷了",
             "温度上不去，只能烤烤手", "暖风很足，比空调舒服", "功率小，十几平的房间都热不起来",
             "烘脚很舒服，全身都暖了", "开最高档也不够热", "取暖效果超出预期"],
    "噪音": ["声音很小，晚上开着睡觉也不吵", "风扇噪音有点大，嗡嗡响", "运行的时候几乎听不到声音",
           "有咔哒咔哒的异响，很烦", "静音做得不错，办公室用合适", "噪音太大了，根本没法睡觉",
           "开高档风声明显", "安静，宝宝睡觉没影响", "一开机就吱吱响", "声音可以接受"],
    "外观": ["外观很漂亮，放在客厅很搭", "颜值高，白色很干净", "外壳做工粗糙，有毛刺",
           "样子比图片上难看", "造型简约大方", "颜色有点土", "设计很时尚，朋友都问哪里买的",
           "表面有划痕，看着像二手的", "小巧精致，很好看", "面板设计得很高级"],
    "耗电": ["很省电，一个月电费没涨多少", "太费电了，电费翻了一倍", "耗电量有点高",
           "有节能档，挺省电的", "电表转得飞快", "功耗不大，可以放心开一整晚", "一晚上要用好几度电",
           "比油汀省电多了", "电费吃不消", "用电还算合理"],
    "安全": ["有倾倒断电保护，家里有小孩放心", "机身摸着烫手，怕烫到孩子", "有过热保护，用着安心",
           "插头用一会儿就发烫，不敢用了", "倒了会自动断电，很安全", "有一股塑料烧焦的味道，担心安全",
           "外壳不烫，老人用着放心", "儿童锁很实用", "电线太细了，感觉不安全", "防烫设计做得好"],
    "价格": ["价格实惠，性价比很高", "有点贵，不值这个价", "活动价买的，很划算", "比超市便宜了一百多",
           "这个价格买到很值", "降价了，感觉亏了", "价格偏高", "便宜又好用", "性价比一般",
           "几十块钱还要什么自行车"],
    "物流": ["快递很快，第二天就到了", "物流太慢了，等了一个星期", "包装完好，送货上门", "箱子被压坏了",
           "发货速度快", "快递员态度很差，放门口就走了", "物流给力，下单当天就发", "运输途中外箱破损",
           "送货及时", "等了好久才到货"],
    "安装": ["安装很简单，装上底座就能用", "说明书看不懂，装了半天", "不用安装，拿出来插电就能用",
           "脚架很难装，螺丝还少了一颗", "组装方便，几分钟就好", "轮子装不上去", "安装视频很清楚",
           "装起来太麻烦了", "开箱即用，省事", "挂墙安装很麻烦"],
    "客服": ["客服很耐心，问题很快解决了", "客服态度差，问了半天不回复", "售后很负责，直接给换了新的",
           "联系客服没人理", "客服回复及时", "售后推来推去，不给解决", "客服小姐姐很热情",
           "退货流程太麻烦，客服也不管", "有问题客服马上处理", "客服一问三不知"],
    "尺寸": ["体积小，不占地方", "比想象中大很多，放不下", "很轻，一只手就能拎走", "太重了，搬来搬去很累",
           "大小刚好，放在书桌下面", "个头太大，卧室放着挤", "尺寸合适", "机身很薄，靠墙放正好",
           "比图片上小，有点失望", "重量适中，带轮子好推"],
}
NONE = ["东西收到了，还没用，用了再来评价", "给爸妈买的，他们说还行", "第二次购买了", "好评", "一般般吧",
        "还没开箱，先评价", "帮朋友买的", "双十一囤的货", "凑单买的", "没什么好说的", "和描述一致",
        "东西不错，推荐购买", "还可以吧", "不好不坏", "用了几天再说", "家里已经有一台了，再买一台"]
OPENERS = ["", "", "", "买给爸妈用的，", "冬天到了，", "用了一周，", "入手三天，", "刚收到，", "老公买的，",
           "宿舍里用，", "对比了好几家，"]
CONNECTORS = ["，", "，而且", "，不过", "。", "；", "，但是", "，另外"]
CLOSERS = ["", "", "。", "！", "，总体满意。", "，推荐购买！", "，就这样吧。", "，不会再买了。", "，五星好评！"]
HELD_OUT = 2  # the last phrases of each aspect appear in dev/test only


def review(rng, held_out: bool):
    k = rng.choices([0, 1, 2, 3], weights=[12, 55, 25, 8])[0]
    if k == 0:
        endings = ["", "。", "！", "，先给个好评。", "，看看耐不耐用。"]
        return rng.choice(OPENERS) + rng.choice(NONE) + rng.choice(endings), []
    labels = rng.sample(sorted(ASPECTS), k)
    parts = []
    for lab in labels:
        phrases = ASPECTS[lab]
        pool = phrases if held_out else phrases[:-HELD_OUT]
        parts.append(rng.choice(pool))
    text = rng.choice(OPENERS) + parts[0]
    for p in parts[1:]:
        text += rng.choice(CONNECTORS) + p
    return text + rng.choice(CLOSERS), labels


def write(path, rows):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["content", "label"])
        for text, labels in rows:
            w.writerow([text, "/".join(labels) if labels else "|"])


def main():
    rng = random.Random(20261122)
    out = os.path.join(os.path.dirname(__file__), "..", "classifier_multi_label", "demo_data")
    os.makedirs(out, exist_ok=True)
    splits = {"train": (700, False), "dev": (150, True), "test": (150, True)}
    seen = set()
    for split, (n, held_out) in splits.items():
        rows = []
        while len(rows) < n:
            text, labels = review(rng, held_out)
            if text in seen:
                continue
            seen.add(text)
            rows.append((text, labels))
        write(os.path.join(out, f"{split}.csv"), rows)
        multi = sum(len(r[1]) >= 2 for r in rows) / n
        none = sum(not r[1] for r in rows) / n
        print(f"{split}: {n} rows, {multi:.0%} with 2+ labels, {none:.0%} with none")


if __name__ == "__main__":
    main()
